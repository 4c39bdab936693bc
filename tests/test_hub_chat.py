"""The hub core: pairing, the durable ordered log, acknowledgements, resume, capacity."""

from __future__ import annotations

import asyncio

from chat import keys
from chat.queue import CLAIM, REMOVE
from tests.support.clients import agent, login_cookie, visitor
from tests.support.servers import HubProcess, hub_env


async def test_visitor_is_paired_with_an_online_agent(hub, rds, lang):
    """A visitor's chat is given to the online agent who speaks its language."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang], name="Sam")
    ada, welcome = await visitor(hub, lang, name="Ada")
    assert welcome["status"] == "queued" and welcome["plan"] == "free" and welcome["verified"] is False
    assigned = await sam.expect("assigned", chat_id=welcome["chat_id"])
    assert assigned["visitor"]["name"] == "Ada" and assigned["visitor"]["lang"] == lang
    assert (await ada.expect("assigned"))["agent"] == {"name": "Sam"}


async def test_welcome_carries_a_secret_resume_token_that_is_not_stored(hub, rds, lang):
    """The resume token is returned once and only its hash is kept in Redis."""
    await agent(hub, rds, f"a-{lang}", [lang])
    _, welcome = await visitor(hub, lang)
    token = welcome["resume"]
    assert len(token) >= 24
    assert not [k async for k in rds.scan_iter(match=f"*{token}*")]


async def test_messages_flow_both_ways_with_seq_acknowledgements(hub, rds, lang):
    """Each side's message is echoed to it with its seq and delivered to the other side."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, welcome = await visitor(hub, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    await ada.send(type="message", text="My invoice is wrong", client_id="v1")
    ack = await ada.expect("message", client_id="v1")
    assert ack["seq"] == 1 and ack["from"] == "visitor" and isinstance(ack["ts"], float)
    got = await sam.expect("message", chat_id=chat_id, seq=1)
    assert got["text"] == "My invoice is wrong"
    await sam.send(type="message", chat_id=chat_id, text="Let me look", client_id="a1")
    assert (await sam.expect("message", client_id="a1"))["seq"] == 2
    reply = await ada.expect("message", seq=2)
    assert reply["from"] == "agent" and reply["text"] == "Let me look"


async def test_seq_has_no_gaps_under_interleaved_messages(hub, rds, lang):
    """Both sides writing at once: both see seq 1..N exactly once, in order."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, _ = await visitor(hub, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    n = 25

    async def write(client, who, extra):
        for i in range(n):
            await client.send(type="message", text=f"{who} {i}", client_id=f"{who}-{i}", **extra)

    await asyncio.gather(write(ada, "v", {}), write(sam, "a", {"chat_id": chat_id}))
    seen_by_visitor = [m["seq"] for m in await ada.messages(2 * n)]
    seen_by_agent = [m["seq"] for m in await sam.messages(2 * n, chat_id=chat_id)]
    assert seen_by_visitor == list(range(1, 2 * n + 1))
    assert seen_by_agent == list(range(1, 2 * n + 1))
    visitor_texts = [m["text"] for m in ada.received if m.get("type") == "message" and m["from"] == "visitor"]
    assert visitor_texts == [f"v {i}" for i in range(n)]


async def test_same_client_id_is_stored_once(hub, rds, lang):
    """A resent message (same client_id) is acknowledged again with the same seq, stored once."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, welcome = await visitor(hub, lang)
    await sam.expect("assigned")
    await ada.send(type="message", text="hello", client_id="same")
    first = await ada.expect("message", client_id="same")
    await ada.send(type="message", text="hello", client_id="same")
    second = await ada.expect("message", client_id="same")
    assert first["seq"] == second["seq"] == 1
    assert await rds.llen(keys.chat_log(welcome["chat_id"])) == 1


async def test_resume_replays_exactly_the_missing_messages(hub, rds, lang):
    """hello with resume and last_seq replays every message after last_seq, in order, once."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, welcome = await visitor(hub, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    await ada.send(type="message", text="one", client_id="1")
    await ada.expect("message", seq=1)
    await ada.close()
    for i in range(2, 5):
        await sam.send(type="message", chat_id=chat_id, text=f"agent {i}", client_id=f"a{i}")
        await sam.expect("message", seq=i, chat_id=chat_id)
    back, again = await visitor(hub, lang, resume=welcome["resume"], last_seq=1)
    assert again["chat_id"] == chat_id and again["status"] == "active"
    replayed = await back.messages(3)
    assert [m["seq"] for m in replayed] == [2, 3, 4]
    await back.send(type="message", text="thanks", client_id="5")
    assert (await back.expect("message", client_id="5"))["seq"] == 5
    assert [m["seq"] for m in back.received if m.get("type") == "message"] == [2, 3, 4, 5]


async def test_msgpack_subprotocol_gets_the_same_frames_in_binary(hub, rds, lang):
    """A client offering livechat.msgpack chats in MessagePack binary frames."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, welcome = await visitor(hub, lang, binary=True)
    assert welcome["status"] == "queued"
    chat_id = (await sam.expect("assigned"))["chat_id"]
    await ada.send(type="message", text="binary hello", client_id="b1")
    assert (await ada.expect("message", client_id="b1"))["seq"] == 1
    assert (await sam.expect("message", chat_id=chat_id))["text"] == "binary hello"


async def test_typing_reaches_the_other_side_only(hub, rds, lang):
    """typing from the agent reaches the visitor; the visitor's reaches the agent with chat_id."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, _ = await visitor(hub, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    await sam.send(type="typing", chat_id=chat_id, active=True)
    assert (await ada.expect("typing"))["active"] is True
    await ada.send(type="typing", active=False)
    assert (await sam.expect("typing", chat_id=chat_id))["active"] is False


async def test_agent_never_exceeds_max_chats(hub, rds, lang):
    """An agent with max_chats 2 holds two chats; the third waits until a slot frees."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang], max_chats=2)
    visitors = [await visitor(hub, lang, name=f"v{i}") for i in range(3)]
    first = await sam.expect("assigned")
    await sam.expect("assigned")
    waiting = [w for c, w in visitors if w["chat_id"] not in {first["chat_id"]}]
    assert await rds.scard(keys.agent_chats(f"a-{lang}")) == 2
    third_client, third = visitors[2]
    await third_client.expect("queued", position=1)  # first in line once the other two are taken
    await sam.send(type="close", chat_id=first["chat_id"], resolution="resolved")
    await sam.expect("closed", chat_id=first["chat_id"], reason="resolved")
    assert (await sam.expect("assigned", chat_id=third["chat_id"]))["visitor"]["name"] == "v2"
    assert await rds.scard(keys.agent_chats(f"a-{lang}")) == 2
    assert waiting


async def test_close_resolved_reaches_the_visitor_who_can_rate(hub, rds, lang):
    """The agent closes as resolved: the visitor gets closed and may rate it once."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, welcome = await visitor(hub, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    await sam.send(type="close", chat_id=chat_id, resolution="resolved")
    assert (await ada.expect("closed"))["reason"] == "resolved"
    await ada.send(type="rate", score=5, comment="quick and kind")
    assert (await ada.expect("rated"))["score"] == 5
    await ada.send(type="rate", score=1)
    assert (await ada.expect("error"))["code"] == "not_allowed"
    assert await rds.hget(keys.chat(chat_id), "rating") == b"5"


async def test_closing_frees_the_slot_for_the_next_chat_at_once(hub, rds, lang):
    """An agent at capacity closes a chat: it is told, once, and the next waiting chat is its."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang], max_chats=1)
    ada, _ = await visitor(hub, lang)
    first = (await sam.expect("assigned"))["chat_id"]
    bob, _ = await visitor(hub, lang)
    await sam.send(type="close", chat_id=first, resolution="resolved")
    assert (await sam.expect("closed", chat_id=first))["reason"] == "resolved"
    second = await sam.expect("assigned")
    assert second["chat_id"] != first and second["status"] == "active"
    await bob.expect("assigned")
    await sam.send(type="typing", chat_id=second["chat_id"], active=True)
    await bob.expect("typing")
    assert [f for f in sam.received if f["type"] == "closed"] == [{"type": "closed", "chat_id": first, "reason": "resolved"}]


async def test_the_chat_that_fills_a_freed_slot_is_counted_once(hub, rds, lang):
    """The chat a close hands to the agent counts as one assignment, written with the close."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang], max_chats=1)
    ada, _ = await visitor(hub, lang)
    first = (await sam.expect("assigned"))["chat_id"]
    bob, _ = await visitor(hub, lang)
    before = float(await rds.hget(keys.STATS, "assignments") or 0)
    await sam.send(type="close", chat_id=first, resolution="resolved")
    second = (await sam.expect("assigned"))["chat_id"]
    await sam.expect("closed", chat_id=first)
    assert float(await rds.hget(keys.STATS, "assignments")) == before + 1
    assert float(await rds.hget(keys.chat(second), "assigned_at")) > 0


async def test_a_starting_hub_gives_redis_its_scripts(redis_url, data_root, test_config_path, rds):
    """A hub loads its Lua scripts as it starts: a close's removal and claim never meet NOSCRIPT."""
    await rds.script_flush()
    fresh = HubProcess(hub_env(redis_url, data_root / "scripts-hub", test_config_path), data_root / "scripts-hub")
    fresh.start()
    try:
        assert await rds.script_exists(REMOVE.sha, CLAIM.sha) == [True, True]
    finally:
        fresh.terminate()


async def test_closing_after_redis_lost_its_scripts_still_frees_the_slot(hub, rds, lang):
    """With Redis' script cache emptied (as by a restart), a close still takes the chat out of
    routing and the agent's slot is free for the next chat."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang], max_chats=1)
    ada, _ = await visitor(hub, lang)
    first = (await sam.expect("assigned"))["chat_id"]
    bob, _ = await visitor(hub, lang)
    await rds.script_flush()
    await sam.send(type="close", chat_id=first, resolution="resolved")
    await sam.expect("closed", chat_id=first)
    assert (await sam.expect("assigned"))["chat_id"] != first
    assert await rds.hget(keys.ROUTE, first) is None


async def test_visitor_leave_closes_the_chat_for_the_agent(hub, rds, lang):
    """A visitor's leave ends an active chat; the agent sees closed with visitor_left."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, _ = await visitor(hub, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    await ada.send(type="leave")
    assert (await ada.expect("closed"))["reason"] == "visitor_left"
    assert (await sam.expect("closed", chat_id=chat_id))["reason"] == "visitor_left"


async def test_agent_reconnect_gets_every_held_chat_with_history(hub, rds, lang):
    """After a reload, welcome lists every chat the agent holds, with its history."""
    username = f"a-{lang}"
    sam, _ = await agent(hub, rds, username, [lang])
    ada, _ = await visitor(hub, lang)
    bob, _ = await visitor(hub, lang)
    for client in (ada, bob):
        await client.expect("assigned")
        await client.send(type="message", text="hi", client_id="x")
        await client.expect("message", client_id="x")
    cookie = await asyncio.to_thread(login_cookie, hub, username)
    await sam.close()
    again, welcome = await agent(hub, rds, username, [lang], create=False, online=False, cookie=cookie)
    assert len(welcome["chats"]) == 2
    assert all(c["history"][0]["text"] == "hi" for c in welcome["chats"])
    assert welcome["agent"]["status"] == "online"


async def test_agent_gone_past_grace_returns_its_chats_to_the_queue(hub, rds, lang):
    """An agent disconnected longer than the grace period loses its chats to the queue,
    where the next free agent takes them with their history."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, welcome = await visitor(hub, lang)
    await sam.expect("assigned")
    await ada.expect("assigned")
    await ada.send(type="message", text="are you there?", client_id="q")
    await ada.expect("message", client_id="q")
    kim, _ = await agent(hub, rds, f"b-{lang}", [lang], name="Kim")
    await sam.close()
    taken = await kim.expect("assigned", chat_id=welcome["chat_id"])
    assert [m["text"] for m in taken["history"]] == ["are you there?"]
    assert (await ada.expect("assigned", agent={"name": "Kim"}))


async def test_agent_back_within_grace_keeps_its_chats(hub, rds, lang):
    """An agent that reconnects within the grace period still holds its chats."""
    username = f"a-{lang}"
    sam, _ = await agent(hub, rds, username, [lang])
    ada, welcome = await visitor(hub, lang)
    await sam.expect("assigned")
    cookie = await asyncio.to_thread(login_cookie, hub, username)
    await sam.close()
    again, back = await agent(hub, rds, username, [lang], create=False, online=False, cookie=cookie)
    assert [c["chat_id"] for c in back["chats"]] == [welcome["chat_id"]]
    assert await rds.sismember(keys.agent_chats(username), welcome["chat_id"])


async def test_last_suitable_agent_leaving_turns_waiting_chats_offline(hub, rds, lang):
    """When the only agent for a language is gone, its requeued chat is told offline."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, _ = await visitor(hub, lang)
    await ada.expect("assigned")
    await sam.close()
    assert (await ada.expect("offline"))["reason"] == "no_agents"


async def test_transfer_to_a_named_agent_moves_the_chat_with_history(hub, rds, lang):
    """transfer to another agent: it receives the chat and its history; the first is released."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, _ = await visitor(hub, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    await ada.send(type="message", text="billing question", client_id="m")
    await sam.expect("message", chat_id=chat_id)
    kim, _ = await agent(hub, rds, f"b-{lang}", [lang], name="Kim")
    await sam.send(type="transfer", chat_id=chat_id, to=f"b-{lang}")
    moved = await kim.expect("assigned", chat_id=chat_id)
    assert moved["history"][0]["text"] == "billing question"
    assert (await sam.expect("released", chat_id=chat_id))["to"] == f"b-{lang}"
    assert (await ada.expect("assigned", timeout=5, agent={"name": "Kim"}))


async def test_transfer_to_queue_gives_the_chat_to_someone_else(hub, rds, lang):
    """transfer to the queue: the chat goes back in line and not to the agent who gave it up."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, _ = await visitor(hub, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    await sam.send(type="transfer", chat_id=chat_id, to="queue")
    await sam.expect("released", chat_id=chat_id)
    await ada.expect("queued")
    kim, _ = await agent(hub, rds, f"b-{lang}", [lang])
    await kim.expect("assigned", chat_id=chat_id)
