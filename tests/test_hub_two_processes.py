"""Two hub processes on one Redis serve one set of chats."""

from __future__ import annotations

import asyncio

from chat import keys
from tests.support.clients import agent, visitor


async def test_visitor_and_agent_on_different_processes_chat_both_ways(hub, second_hub, rds, lang):
    """Visitor on one process, agent on the other: pairing and messages both ways."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, _ = await visitor(second_hub, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    await ada.expect("assigned")
    await ada.send(type="message", text="from process two", client_id="v")
    assert (await sam.expect("message", chat_id=chat_id))["text"] == "from process two"
    await sam.send(type="message", chat_id=chat_id, text="from process one", client_id="a")
    assert (await ada.expect("message", seq=2))["text"] == "from process one"


async def test_fifty_visitors_racing_for_five_agents_across_two_processes(hub, second_hub, rds, lang):
    """50 visitors, 5 agents of capacity 10, spread over two processes: every chat is given
    to exactly one agent and no agent holds more than its capacity."""
    agents = []
    for i in range(5):
        process = hub if i % 2 else second_hub
        agents.append(await agent(process, rds, f"r{i}-{lang}", [lang], max_chats=10))
    visitors = await asyncio.gather(*(visitor(hub if i % 2 else second_hub, lang) for i in range(50)))
    chat_ids = {welcome["chat_id"] for _, welcome in visitors}
    await asyncio.gather(*(client.expect("assigned", timeout=20) for client, _ in visitors))
    held: list[str] = []
    for i, (client, _) in enumerate(agents):
        members = {m.decode() for m in await rds.smembers(keys.agent_chats(f"r{i}-{lang}"))}
        assert len(members) <= 10
        frames = [await client.expect("assigned") for _ in members]
        assert {f["chat_id"] for f in frames} == members
        held += members
    assert sorted(held) == sorted(chat_ids)
