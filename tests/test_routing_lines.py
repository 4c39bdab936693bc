"""The lines a chat waits in stay exact although scripts take every key in KEYS: a claim from a
language line cannot name the chat's topic line, so the chat may linger there a moment
(chat/queue.py); readers of the topic line skip and remove it, and nothing stays behind."""

from __future__ import annotations

import time

from chat import keys
from chat.queue import AgentSkills, Queue, write_agent
from tests.support.clients import close_chat
from tests.support.redis import route
from tests.support.waiting import eventually


async def topic_line(rds, lang: str, topic: str) -> set[str]:
    return {m.decode() for m in await rds.zrange(keys.queue(lang, topic), 0, -1)}


async def unrecorded_generalist(rds, username: str, lang: str) -> AgentSkills:
    """An online agent without topics whose claims no hub records (as if the hub that made a
    claim died before recording it): a chat it claims stays in its topic line."""
    await write_agent(rds, username, {"name": username, "role": "agent", "langs": [lang], "topics": [],
                                      "max_chats": 5, "status": "online"})
    return AgentSkills(username, (lang,), (), 5)


async def test_a_chat_a_generalist_takes_leaves_its_topic_line(hub, rds, lang, sockets):
    """A billing chat given to an agent without topics is in no line once it is assigned."""
    gen, _ = await sockets.agent(hub, f"g-{lang}", [lang])
    _, welcome = await sockets.visitor(hub, lang, topic="billing")
    await gen.expect("assigned", chat_id=welcome["chat_id"])

    async def gone() -> bool:
        return welcome["chat_id"] not in await topic_line(rds, lang, "billing")

    await eventually(gone)
    assert await rds.zscore(keys.queue(lang), welcome["chat_id"]) is None
    assert "linger" not in await route(rds, welcome["chat_id"])


async def test_a_specialist_skips_and_removes_a_chat_lingering_in_its_topic_line(hub, rds, lang, sockets):
    """A specialist's next claim passes over a claimed chat still in its topic line, and removes it."""
    ben, _ = await sockets.agent(hub, f"b-{lang}", [lang], topics=["billing"], max_chats=1)
    _, first = await sockets.visitor(hub, lang, topic="billing")
    await ben.expect("assigned", chat_id=first["chat_id"])
    _, older = await sockets.visitor(hub, lang, topic="billing")
    _, newer = await sockets.visitor(hub, lang, topic="billing")
    gen = await unrecorded_generalist(rds, f"g-{lang}", lang)
    assert await Queue(rds).claim(gen, time.time()) == older["chat_id"]
    assert older["chat_id"] in await topic_line(rds, lang, "billing")  # it lingers there

    await close_chat(ben, first["chat_id"])
    assert (await ben.expect("assigned"))["chat_id"] == newer["chat_id"]
    assert await topic_line(rds, lang, "billing") == set()
    lingered = await route(rds, older["chat_id"])
    assert lingered["agent"] == gen.username and "linger" not in lingered


async def test_closing_a_chat_that_lingers_takes_it_out_of_its_topic_line(hub, rds, lang, sockets):
    """Its holder closing a lingering chat, knowing nothing of its lines, leaves no trace in any line."""
    ben, _ = await sockets.agent(hub, f"b-{lang}", [lang], topics=["billing"], max_chats=1)
    _, first = await sockets.visitor(hub, lang, topic="billing")
    await ben.expect("assigned", chat_id=first["chat_id"])
    _, welcome = await sockets.visitor(hub, lang, topic="billing")  # waits: ben is full
    gen = await unrecorded_generalist(rds, f"g-{lang}", lang)
    queue = Queue(rds)
    assert await queue.claim(gen, time.time()) == welcome["chat_id"]
    assert (await queue.remove(welcome["chat_id"], holder=gen.username))["lang"] == lang
    assert await topic_line(rds, lang, "billing") == set()
    assert await rds.sismember(keys.agent_chats(gen.username), welcome["chat_id"]) == 0
