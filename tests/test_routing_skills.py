"""Who may take a chat: language and topic skills, capacity (max_chats) under a race between
two hub processes, `away`, freed slots that pull the next chat, and `offline` when nobody can."""

from __future__ import annotations

import asyncio

import pytest

from chat import keys
from tests.support.clients import close_chat, token
from tests.support.redis import held, route
from tests.support.servers import hub_env, HubProcess


@pytest.fixture(scope="module")
def other_hub(request, redis_url, data_root, test_config_path):
    """A second `livechat serve` on the same Redis, so that claims race between processes:
    the session's `second_hub` where conftest provides one, else one of this module's own."""
    try:
        yield request.getfixturevalue("second_hub")
        return
    except pytest.FixtureLookupError:
        pass
    process = HubProcess(hub_env(redis_url, data_root / "routing-hub2", test_config_path), data_root / "routing-hub2")
    process.start()
    yield process
    process.terminate()


# --- skills ----------------------------------------------------------------------------------


async def test_chat_goes_only_to_an_agent_who_speaks_its_language(hub, rds, lang, sockets):
    """With a free agent of another language online, the chat still goes to the one who speaks it."""
    other = lang + "x"
    await sockets.agent(hub, f"a-{other}", [other])
    sam, _ = await sockets.agent(hub, f"a-{lang}", [lang])
    _, welcome = await sockets.visitor(hub, lang)
    assert (await sam.expect("assigned"))["chat_id"] == welcome["chat_id"]
    assert await held(rds, f"a-{other}") == set()


async def test_offline_when_no_agent_speaks_the_language(hub, rds, lang, sockets):
    """A chat in a language no online agent speaks gets offline no_agents right after welcome."""
    await sockets.agent(hub, f"a-{lang}", [lang + "x"])
    ada, welcome = await sockets.visitor(hub, lang)
    assert welcome["status"] == "offline"
    assert ada.received[-1] == welcome
    assert await ada.expect("offline") == {"type": "offline", "reason": "no_agents"}
    assert await route(rds, welcome["chat_id"]) is None


async def test_agent_with_topics_takes_its_topics_and_chats_without_topic(hub, rds, lang, sockets):
    """A billing specialist is given billing chats and chats with no topic."""
    ben, _ = await sockets.agent(hub, f"b-{lang}", [lang], topics=["billing"])
    _, billing = await sockets.visitor(hub, lang, topic="billing")
    _, untopical = await sockets.visitor(hub, lang)
    got = {(await ben.expect("assigned"))["chat_id"], (await ben.expect("assigned"))["chat_id"]}
    assert got == {billing["chat_id"], untopical["chat_id"]}


async def test_offline_when_only_agents_of_other_topics_are_online(hub, rds, lang, sockets):
    """A security question with only a billing specialist online: offline no_agents."""
    await sockets.agent(hub, f"b-{lang}", [lang], topics=["billing"])
    ada, welcome = await sockets.visitor(hub, lang, topic="security")
    assert welcome["status"] == "offline"
    assert (await ada.expect("offline"))["reason"] == "no_agents"


async def test_free_specialist_leaves_other_topics_to_a_generalist(hub, rds, lang, sockets):
    """A security chat waits for the busy generalist even though a billing specialist is free."""
    gen, _ = await sockets.agent(hub, f"g-{lang}", [lang], max_chats=1)
    _, first = await sockets.visitor(hub, lang, topic="account")
    await gen.expect("assigned", chat_id=first["chat_id"])
    await sockets.agent(hub, f"b-{lang}", [lang], topics=["billing"])
    sec, welcome = await sockets.visitor(hub, lang, topic="security")
    await sec.expect("queued", position=1)
    await close_chat(gen, first["chat_id"])
    assert (await gen.expect("assigned"))["chat_id"] == welcome["chat_id"]
    assert await held(rds, f"b-{lang}") == set()


async def test_emergency_goes_to_any_agent_of_the_language(hub, rds, lang, sockets):
    """An emergency is offered to a specialist of another topic too: whoever is free answers it."""
    ben, _ = await sockets.agent(hub, f"b-{lang}", [lang], topics=["billing"])

    _, welcome = await sockets.visitor(hub, lang, topic="emergency", identity=token("plus"))
    assigned = await ben.expect("assigned")
    assert assigned["chat_id"] == welcome["chat_id"] and assigned["visitor"]["emergency"] is True


# --- capacity, away, freed slots -------------------------------------------------------------


async def test_capacity_is_never_exceeded_with_three_agents_and_forty_visitors_racing(hub, other_hub, rds, lang, sockets):
    """Agents on two hubs, 40 visitors at once, chats closed as they come: no agent ever holds
    more than max_chats (watched in Redis throughout), and no chat is given twice."""
    capacity = {f"a-{lang}-1": 1, f"a-{lang}-2": 2, f"a-{lang}-3": 3}
    desks = {}
    for username, max_chats in capacity.items():
        first, _ = await sockets.agent(hub, username, [lang], max_chats=max_chats)
        second, _ = await sockets.agent(other_hub, username, [lang], max_chats=max_chats, create=False, online=False)
        desks[username] = (first, second)
    most = {u: 0 for u in capacity}
    given: dict[str, str] = {}
    stop = asyncio.Event()

    async def watch() -> None:
        """Sample every agent's held set as fast as Redis answers, until told to stop."""
        while not stop.is_set():
            async with rds.pipeline(transaction=False) as pipe:
                for username in capacity:
                    pipe.scard(keys.agent_chats(username))
                sizes = await pipe.execute()
            for username, size in zip(capacity, sizes):
                most[username] = max(most[username], size)
            await asyncio.sleep(0)

    async def work(username: str) -> None:
        """Close every chat as soon as it is given, every other one through the agent's other hub."""
        first, second = desks[username]
        while True:
            frame = await first.expect("assigned", timeout=30)
            assert frame["chat_id"] not in given, "a chat was given twice"
            given[frame["chat_id"]] = username
            closer = first
            if len(given) % 2:
                await second.expect("assigned", chat_id=frame["chat_id"])
                closer = second
            await close_chat(closer, frame["chat_id"])

    async def all_closed(chat_ids: list[str]) -> None:
        while True:
            async with rds.pipeline(transaction=False) as pipe:
                for chat_id in chat_ids:
                    pipe.hget(keys.chat(chat_id), "status")
                statuses = await pipe.execute()
            if all(s == b"closed" for s in statuses) or any(w.done() for w in workers):
                return
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    workers = [asyncio.create_task(work(u)) for u in capacity]
    try:
        arrivals = await asyncio.gather(*(sockets.visitor(hub if i % 2 else other_hub, lang) for i in range(40)))
        chat_ids = [w["chat_id"] for _, w in arrivals]
        await asyncio.wait_for(all_closed(chat_ids), 40)
    finally:
        stop.set()  # the watcher ends between two reads (cancelling it mid-read would break its connection)
        for task in workers:  # workers only wait on sockets: safe to cancel
            task.cancel()
        outcomes = await asyncio.gather(watcher, *workers, return_exceptions=True)
    failures = [o for o in outcomes if o is not None and not isinstance(o, asyncio.CancelledError)]
    assert not failures, failures
    assert all(most[u] <= capacity[u] for u in capacity), most
    assert most[f"a-{lang}-3"] >= 2
    assert set(given) <= set(chat_ids)
    # Every chat was given, except (on a starved host) a waiting visitor whose hub missed
    # heartbeats for longer than the test config's 1 s grace and was taken for gone.
    reasons = {c: (await rds.hget(keys.chat(c), "closed_reason")).decode() for c in chat_ids if c not in given}
    assert set(reasons.values()) <= {"visitor_left"} and len(reasons) <= 3, reasons
    assert [await held(rds, u) for u in capacity] == [set(), set(), set()]


async def test_freed_slot_pulls_the_next_chat(hub, rds, lang, sockets):
    """Closing a chat at full capacity gives the agent the waiting chat at once (pushed, not polled)."""
    sam, _ = await sockets.agent(hub, f"a-{lang}", [lang], max_chats=1)
    _, first = await sockets.visitor(hub, lang)
    await sam.expect("assigned", chat_id=first["chat_id"])
    waiting, second = await sockets.visitor(hub, lang)
    await waiting.expect("queued", position=1)
    await close_chat(sam, first["chat_id"])
    assert (await sam.expect("assigned"))["chat_id"] == second["chat_id"]
    await waiting.expect("assigned")


async def test_transfer_to_queue_frees_the_slot_for_the_next_chat(hub, rds, lang, sockets):
    """Handing a chat back to the queue frees the slot; another agent then takes that chat."""
    sam, _ = await sockets.agent(hub, f"a-{lang}", [lang], max_chats=1)
    _, first = await sockets.visitor(hub, lang)
    await sam.expect("assigned", chat_id=first["chat_id"])
    kim, _ = await sockets.agent(hub, f"k-{lang}", [lang], max_chats=1)
    await sam.send(type="transfer", chat_id=first["chat_id"], to="queue")
    await sam.expect("released", chat_id=first["chat_id"])
    assert (await kim.expect("assigned"))["chat_id"] == first["chat_id"]


async def test_away_agent_takes_no_new_chats_and_keeps_its_own(hub, rds, lang, sockets):
    """An away agent with free room is passed over; the chat waits for the next freed slot."""
    sam, _ = await sockets.agent(hub, f"s-{lang}", [lang], max_chats=1)
    _, first = await sockets.visitor(hub, lang)
    await sam.expect("assigned", chat_id=first["chat_id"])
    kim, _ = await sockets.agent(hub, f"k-{lang}", [lang], max_chats=3)
    _, second = await sockets.visitor(hub, lang)
    await kim.expect("assigned", chat_id=second["chat_id"])
    await kim.send(type="status", status="away")
    await kim.expect("status", status="away")
    waiting, third = await sockets.visitor(hub, lang)
    await waiting.expect("queued", position=1)
    await close_chat(sam, first["chat_id"])
    assert (await sam.expect("assigned"))["chat_id"] == third["chat_id"]
    assert await held(rds, f"k-{lang}") == {second["chat_id"]}


async def test_going_online_pulls_waiting_chats(hub, rds, lang, sockets):
    """An agent switching from away to online is given the waiting chat at once."""
    sam, _ = await sockets.agent(hub, f"s-{lang}", [lang], max_chats=1)
    _, first = await sockets.visitor(hub, lang)
    await sam.expect("assigned", chat_id=first["chat_id"])
    kim, _ = await sockets.agent(hub, f"k-{lang}", [lang], online=False)
    waiting, second = await sockets.visitor(hub, lang)
    await waiting.expect("queued", position=1)
    await kim.send(type="status", status="online")
    assert (await kim.expect("assigned"))["chat_id"] == second["chat_id"]


async def test_waiting_chat_goes_offline_when_the_last_suitable_agent_goes_away(hub, rds, lang, sockets):
    """While a chat waits, its only possible agent switches to away: the visitor gets offline."""
    sam, _ = await sockets.agent(hub, f"a-{lang}", [lang], max_chats=1)
    _, first = await sockets.visitor(hub, lang)
    await sam.expect("assigned", chat_id=first["chat_id"])
    waiting, second = await sockets.visitor(hub, lang)
    await waiting.expect("queued", position=1)
    await sam.send(type="status", status="away")
    assert (await waiting.expect("offline"))["reason"] == "no_agents"
    assert await route(rds, second["chat_id"]) is None
    assert await held(rds, f"a-{lang}") == {first["chat_id"]}
