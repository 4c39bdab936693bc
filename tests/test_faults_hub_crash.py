"""A hub is killed (SIGKILL) mid-chat with the visitor and the agent on it. Both come back
(restarted hub on the same port, or the other hub) and every acknowledged message is there
exactly once, in order. The chat stays with its agent if the agent is back within the grace
period, and goes back to its original place in the queue if not."""

from __future__ import annotations

import asyncio

import msgpack
import pytest
import websockets

from chat import keys
from tests.support.clients import agent, Client, create_agent, login_cookie, visitor
from tests.support.servers import hub_env, HubProcess, wait_port_free
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def hub_a(redis_url, data_root, test_config_path):
    hub = HubProcess(hub_env(redis_url, data_root / "crash-a", test_config_path), data_root / "crash-a")
    hub.start()
    yield hub
    hub.terminate()


@pytest.fixture(scope="module")
def hub_b(redis_url, data_root, test_config_path):
    hub = HubProcess(hub_env(redis_url, data_root / "crash-b", test_config_path), data_root / "crash-b")
    hub.start()
    yield hub
    hub.terminate()


async def agent_socket(hub: HubProcess, cookie: str) -> tuple[Client, dict]:
    """The agent's dashboard reconnecting with the session cookie it already has."""
    ws = await websockets.connect(hub.ws_url + "/ws/agent", additional_headers={"Cookie": cookie}, max_size=2**22)
    client = Client(ws)
    return client, await client.expect("welcome")


async def crash(hub: HubProcess) -> None:
    hub.kill()
    await asyncio.to_thread(wait_port_free, hub.port)


def client_ids(log: list[bytes]) -> list[str]:
    return [msgpack.unpackb(raw).get("client_id") for raw in log]


async def route(rds, chat_id: str) -> dict:
    raw = await rds.hget(keys.ROUTE, chat_id)
    return msgpack.unpackb(raw) if raw else {}


async def test_both_sides_resume_after_a_crash_and_the_agent_keeps_the_chat(hub_a, hub_b, rds, lang):
    """Hub killed mid-chat: the agent reconnects to the other hub within its grace period and
    keeps the chat with its full history; the visitor resumes on the restarted hub; nothing
    acknowledged is lost or doubled."""
    username = f"a-{lang}"
    await create_agent(rds, username, [lang], name="Sam")
    cookie = await asyncio.to_thread(login_cookie, hub_a, username)
    sam, _ = await agent_socket(hub_a, cookie)
    await sam.send(type="status", status="online")
    ada, welcome = await visitor(hub_a, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    for i in range(3):
        await ada.send(type="message", text=f"visitor {i}", client_id=f"v{i}")
        await ada.expect("message", client_id=f"v{i}")
        await sam.send(type="message", chat_id=chat_id, text=f"agent {i}", client_id=f"a{i}")
        await sam.expect("message", client_id=f"a{i}")
    for i in range(3, 8):  # in flight when the hub dies
        await ada.send(type="message", text=f"visitor {i}", client_id=f"v{i}")
        await sam.send(type="message", chat_id=chat_id, text=f"agent {i}", client_id=f"a{i}")
    await crash(hub_a)
    visitor_acked = [f["client_id"] for f in ada.received if f.get("type") == "message" and f["from"] == "visitor"]
    last_seq = max((f["seq"] for f in ada.received if f.get("type") == "message"), default=0)
    agent_acked = {f["client_id"] for f in sam.received if f.get("type") == "message" and f.get("from") == "agent"}

    # The agent's dashboard reconnects at once, to the other hub: still its chat, whole history.
    sam2, back = await agent_socket(hub_b, cookie)
    [held] = back["chats"]
    assert held["chat_id"] == chat_id
    history = [m["client_id"] for m in held["history"]]
    assert len(history) == len(set(history))
    assert [c for c in history if c in visitor_acked] == visitor_acked
    assert agent_acked <= set(history)
    await sam2.send(type="status", status="online")
    for i in range(3, 8):  # the dashboard resends what it had no acknowledgement for
        if f"a{i}" not in agent_acked:
            await sam2.send(type="message", chat_id=chat_id, text=f"agent {i}", client_id=f"a{i}")
            await sam2.expect("message", client_id=f"a{i}")

    # The visitor's page reconnects to the same address once the hub is back.
    hub_a.start()
    stored = await rds.llen(keys.chat_log(chat_id))
    ada2, again = await visitor(hub_a, lang, resume=welcome["resume"], last_seq=last_seq)
    assert again["chat_id"] == chat_id and again["status"] == "active"
    replay = await ada2.messages(stored - last_seq)
    assert [m["seq"] for m in replay] == list(range(last_seq + 1, stored + 1))
    known = set(visitor_acked) | {m["client_id"] for m in replay}
    for i in range(3, 8):  # the widget resends its messages that were neither acknowledged nor replayed
        if f"v{i}" not in known:
            await ada2.send(type="message", text=f"visitor {i}", client_id=f"v{i}")
            await ada2.expect("message", client_id=f"v{i}")
    await sam2.send(type="message", chat_id=chat_id, text="all good?", client_id="done")
    await ada2.expect("message", client_id="done")

    log = client_ids(await rds.lrange(keys.chat_log(chat_id), 0, -1))
    assert sorted(log) == sorted([f"v{i}" for i in range(8)] + [f"a{i}" for i in range(8)] + ["done"])
    assert [c for c in log if c.startswith("v")] == [f"v{i}" for i in range(8)]  # each side's order kept
    assert [c for c in log if c.startswith("a")] == [f"a{i}" for i in range(8)]
    seen_by_visitor = [f["seq"] for f in ada2.received if f.get("type") == "message"]
    assert seen_by_visitor == sorted(set(seen_by_visitor)) and seen_by_visitor[0] == last_seq + 1
    assert (await route(rds, chat_id))["agent"] == username
    await sam2.close()
    await ada2.close()


async def test_agent_gone_past_grace_its_chat_returns_to_its_original_place(hub_a, hub_b, rds, lang):
    """Hub killed and the agent does not come back: after the grace period its chat is queued
    again ahead of a visitor who arrived later, and goes to the next free agent first."""
    kim, _ = await agent(hub_b, rds, f"b-{lang}", [lang], max_chats=1, name="Kim")  # on the other hub, busy
    busy, _ = await visitor(hub_b, lang, name="earliest")
    busy_id = (await kim.expect("assigned"))["chat_id"]
    username = f"a-{lang}"
    await create_agent(rds, username, [lang], max_chats=1, name="Sam")
    cookie = await asyncio.to_thread(login_cookie, hub_a, username)
    sam, _ = await agent_socket(hub_a, cookie)
    await sam.send(type="status", status="online")
    first, first_welcome = await visitor(hub_a, lang, name="first")
    first_id = (await sam.expect("assigned"))["chat_id"]
    await first.send(type="message", text="my card was charged twice", client_id="c1")
    await first.expect("message", client_id="c1")
    later, later_welcome = await visitor(hub_b, lang, name="later")  # waits: both agents are full
    assert (await later.expect("queued"))["position"] == 1
    score = float((await rds.hget(keys.chat(first_id), "score")).decode())

    await crash(hub_a)
    await eventually(lambda: _state(rds, first_id), 15, message="the first chat to be requeued")
    assert await rds.zscore(keys.QUEUE_ALL, first_id) == score  # its original place
    assert await rds.zrank(keys.queue(lang), first_id) < await rds.zrank(keys.queue(lang), later_welcome["chat_id"])
    assert (await later.expect("queued", position=2))["position"] == 2
    assert await rds.scard(keys.agent_chats(username)) == 0

    back, again = await visitor(hub_b, lang, resume=first_welcome["resume"], last_seq=1)
    assert again["status"] == "queued"
    assert (await back.expect("queued"))["position"] == 1
    await kim.send(type="close", chat_id=busy_id, resolution="resolved")
    taken = await kim.expect("assigned")
    assert taken["chat_id"] == first_id  # served before the visitor who came later
    assert [m["client_id"] for m in taken["history"]] == ["c1"]
    assert (await back.expect("assigned"))["agent"] == {"name": "Kim"}
    for client in (kim, busy, first, later, back):
        await client.close()


async def _state(rds, chat_id: str) -> bool:
    return (await route(rds, chat_id)).get("state") == "queued"
