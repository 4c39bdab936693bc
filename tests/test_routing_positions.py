"""Places in line: exact (from sorted-set ranks) after arrivals, departures and assignments,
and sent again whenever they change. Updates are coalesced, so tests wait for the value."""

from __future__ import annotations
from tests.support.clients import close_chat, token



async def test_positions_are_exact_after_arrivals_departures_and_assignments(hub, rds, lang, sockets):
    """1..4 on arrival; a departure moves those behind up; an assignment moves everyone up;
    a visionary arriving later goes in front of the free visitors."""
    sam, _ = await sockets.agent(hub, f"a-{lang}", [lang], max_chats=1)
    _, current = await sockets.visitor(hub, lang)
    await sam.expect("assigned", chat_id=current["chat_id"])
    line = []
    for place in range(1, 5):
        client, welcome = await sockets.visitor(hub, lang)
        frame = await client.expect("queued", position=place)
        assert "eta_s" in frame
        line.append((client, welcome["chat_id"]))
    (v1, c1), (v2, _), (v3, _), (v4, _) = line

    await v2.send(type="leave")
    await v2.expect("closed")
    await v3.expect("queued", position=2)
    await v4.expect("queued", position=3)

    await close_chat(sam, current["chat_id"])
    assert (await sam.expect("assigned"))["chat_id"] == c1
    await v1.expect("assigned")
    await v3.expect("queued", position=1)
    await v4.expect("queued", position=2)

    v5, _ = await sockets.visitor(hub, lang, identity=token("visionary"))
    await v5.expect("queued", position=1)
    await v3.expect("queued", position=2)
    await v4.expect("queued", position=3)


async def test_position_counts_only_chats_of_the_same_language(hub, rds, lang, sockets):
    """A visitor's place is among chats of its language: another language's line does not count."""
    other = lang + "x"
    for code in (lang, other):
        sam, _ = await sockets.agent(hub, f"a-{code}", [code], max_chats=1)
        _, current = await sockets.visitor(hub, code)
        await sam.expect("assigned", chat_id=current["chat_id"])
    for _ in range(3):
        client, _ = await sockets.visitor(hub, other)
    await client.expect("queued", position=3)
    mine, _ = await sockets.visitor(hub, lang)
    await mine.expect("queued", position=1)


async def test_resumed_visitor_is_told_its_place_again(hub, rds, lang, sockets):
    """A waiting visitor who reconnects with its resume token gets welcome queued and its place."""
    sam, _ = await sockets.agent(hub, f"a-{lang}", [lang], max_chats=1)
    _, current = await sockets.visitor(hub, lang)
    await sam.expect("assigned", chat_id=current["chat_id"])
    await sockets.visitor(hub, lang)
    second, welcome = await sockets.visitor(hub, lang)
    await second.expect("queued", position=2)
    await second.close()
    again, rewelcome = await sockets.visitor(hub, lang, resume=welcome["resume"])
    assert rewelcome["chat_id"] == welcome["chat_id"] and rewelcome["status"] == "queued"
    await again.expect("queued", position=2)
