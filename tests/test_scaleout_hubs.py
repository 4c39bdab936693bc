"""Several `livechat serve` processes and a `livechat worker` on one Redis serve one set of
chats: sockets on different hubs chat, every hub shows the same queue figures, and each
timer fires exactly once however many processes race for it."""

from __future__ import annotations

import asyncio
import json
import time

import msgpack
import pytest
from redis.asyncio import Redis

from chat import keys, timers
from chat.snapshot import comparable
from tests.support.clients import agent, create_agent, login_cookie, visitor
from tests.support.http import http
from tests.support.redis import DATABASES, db_url
from tests.support.servers import hub_env, HubProcess
from tests.support.waiting import eventually, wait_until


@pytest.fixture(scope="module")
def hub2(redis_url, data_root, test_config_path):
    """A second hub next to the session's `hub`, on the same Redis."""
    process = HubProcess(hub_env(redis_url, data_root / "scale-hub2", test_config_path), data_root / "scale-hub2")
    process.start()
    yield process
    process.terminate()


@pytest.fixture(scope="module")
def worker(redis_url, data_root, test_config_path):
    """A `livechat worker` (timers, outbox, retention) racing the hubs for the same duties."""
    process = HubProcess(hub_env(redis_url, data_root / "scale-worker", test_config_path), data_root / "scale-worker",
                         command="worker")
    process.start()
    wait_until(lambda: "livechat worker running" in process.log_tail(), 20, 0.05, "the worker to run")
    yield process
    process.terminate()


async def test_visitor_and_agent_on_different_hubs_chat_normally(hub, hub2, rds, lang):
    """The visitor on one hub and the agent on another: assignment, messages both ways, typing, close."""
    sam, _ = await agent(hub2, rds, f"a-{lang}", [lang], name="Sam")
    ada, welcome = await visitor(hub, lang, name="Ada")
    chat_id = (await sam.expect("assigned"))["chat_id"]
    assert chat_id == welcome["chat_id"]
    assert (await ada.expect("assigned"))["agent"] == {"name": "Sam"}
    for i in range(5):
        await ada.send(type="message", text=f"question {i}", client_id=f"v{i}")
        assert (await sam.expect("message", chat_id=chat_id, client_id=f"v{i}"))["text"] == f"question {i}"
        await sam.send(type="message", chat_id=chat_id, text=f"answer {i}", client_id=f"a{i}")
        assert (await ada.expect("message", client_id=f"a{i}"))["text"] == f"answer {i}"
    await sam.send(type="typing", chat_id=chat_id, active=True)
    assert (await ada.expect("typing"))["active"] is True
    await sam.send(type="close", chat_id=chat_id, resolution="resolved")
    assert (await ada.expect("closed"))["reason"] == "resolved"
    seqs = [m["seq"] for m in ada.received if m.get("type") == "message"]
    assert seqs == list(range(1, 11))
    await ada.close()
    await sam.close()


def _queue(base_url: str, cookie: str) -> dict:
    status, body = http(base_url + "/api/queue", headers={"Cookie": cookie})
    assert status == 200, (status, body[:200])
    return comparable(json.loads(body))


async def test_queue_figures_are_the_same_on_every_hub(hub, hub2, rds, lang):
    """GET /api/queue (one supervisor session) gives the same figures on both hubs."""
    kim, _ = await agent(hub, rds, f"a-{lang}", [lang], max_chats=1, name="Kim")
    waiting = [await visitor(h, lang) for h in (hub, hub2, hub, hub2)]
    await kim.expect("assigned")
    supervisor = f"s-{lang}"
    await create_agent(rds, supervisor, [lang], role="supervisor")
    cookie = await asyncio.to_thread(login_cookie, hub, supervisor)

    def same() -> dict | None:
        """Figures from hub 1, hub 2, hub 1: if nothing moved in between, the two hubs agree."""
        first, second, again = _queue(hub.base_url, cookie), _queue(hub2.base_url, cookie), _queue(hub.base_url, cookie)
        if first != again:
            return None  # the desk changed meanwhile (other tests' chats, a flush): look again
        assert second == first
        return first

    figures = await asyncio.to_thread(wait_until, same, 20, 0.1, "a quiet moment to compare")
    assert figures["waiting_by_lang"][lang] == 3
    mine = {a["username"]: a for a in figures["agents"]}[f"a-{lang}"]
    assert (mine["load"], mine["capacity"], mine["free"]) == (1, 1, 0)
    for client, _ in waiting:
        await client.close()
    await kim.close()


async def test_due_timers_are_taken_by_exactly_one_of_many_racers(redis_url, rds, lang):
    """Many processes popping the same due deadlines: each deadline goes to exactly one."""
    # A database of its own: popping "due" deadlines there cannot take the running hubs' timers.
    racers = [Redis.from_url(db_url(redis_url, DATABASES["scaleout_timer_race"])) for _ in range(6)]
    kind = f"race-{lang}"
    base = time.time() + 10**6
    await racers[0].delete(keys.TIMERS)
    async with racers[0].pipeline(transaction=False) as pipe:
        for i in range(400):
            timers.schedule_on(pipe, kind, str(i), base + i)
        await pipe.execute()

    async def race(client: Redis) -> list[str]:
        won = []
        while await client.zcount(keys.TIMERS, base, base + 10**4):
            batch = await timers.pop_due(client, base + 10**4, limit=7)
            won += [chat_id for k, chat_id, _ in batch if k == kind]
        return won

    results = await asyncio.gather(*(race(c) for c in racers))
    every = [chat_id for won in results for chat_id in won]
    assert sorted(every, key=int) == [str(i) for i in range(400)]  # all taken, none twice
    assert sum(1 for won in results if won) > 1  # it was a real race: several racers took some
    for client in racers:
        await client.aclose()


async def test_max_wait_fires_once_per_chat_with_two_hubs_and_a_worker(hub, hub2, worker, rds, lang):
    """Deadlines due at once, three processes running timers: every waiting visitor is asked
    "wait or ticket" exactly once."""
    kim, _ = await agent(hub, rds, f"a-{lang}", [lang], max_chats=1)
    await visitor(hub, lang)
    await kim.expect("assigned")  # Kim is full: the others wait
    waiting = [await visitor(h, lang) for h in (hub, hub2) * 3]
    now = time.time()
    for _, welcome in waiting:
        await timers.schedule(rds, timers.MAX_WAIT, welcome["chat_id"], now)
    for client, _ in waiting:
        assert (await client.expect("wait_or_ticket"))["timeout_s"] > 0

    async def fired_everywhere() -> bool:
        return all([await rds.zscore(keys.TIMERS, f"{timers.WAIT_CHOICE}|{w['chat_id']}") for _, w in waiting])

    await eventually(fired_everywhere, 15, message="every firing to be complete")
    # A marker behind everything the firing published: count the offers before it.
    for client, welcome in waiting:
        await rds.publish(keys.chat_channel(welcome["chat_id"]),
                          msgpack.packb({"type": "typing", "from": "agent", "active": True}))
        await client.expect("typing")
        offers = [f for f in client.received if f.get("type") == "wait_or_ticket"]
        assert len(offers) == 1
        await client.close()
    await kim.close()
