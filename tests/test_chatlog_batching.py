"""The hub stores messages through a batcher: appends made at the same time share one
pipeline, and each still gets its own seq, its own result and its own error."""

from __future__ import annotations

import asyncio

import msgpack
import pytest

from chat import keys
from chat.batching import ScriptBatcher
from chat.chatlog import ChatGone, ChatLog


@pytest.fixture
async def batched(rds):
    return ChatLog(rds, ScriptBatcher(rds))


@pytest.fixture
def open_chat(hub, sockets, lang):
    """A chat as a visitor's hello on the session hub stores it (nobody serves this test's
    language, so it waits offline and takes messages), or one its visitor has left (closed)."""
    async def open_(left: bool = False) -> str:
        visitor, welcome = await sockets.visitor(hub, lang)
        if left:
            await visitor.send(type="leave")
            await visitor.expect("closed")
        return welcome["chat_id"]

    return open_


async def test_concurrent_appends_get_consecutive_seqs_in_call_order(rds, batched, open_chat):
    """A hundred appends started together are stored once each, seq 1..100 in call order."""
    chat_id = await open_chat()
    results = await asyncio.gather(*(batched.append(chat_id, "visitor", f"m{i}", 1.0, f"c{i}") for i in range(100)))
    assert [seq for seq, _, _ in results] == list(range(1, 101))
    stored = [msgpack.unpackb(raw) for raw in await rds.lrange(keys.chat_log(chat_id), 0, -1)]
    assert [m["text"] for m in stored] == [f"m{i}" for i in range(100)]


async def test_calls_made_during_a_round_trip_share_the_next_pipeline(rds, batched, open_chat):
    """Appends made while one is in flight go out together in a single pipeline."""
    chat_id = await open_chat()
    batcher = batched.batcher
    sizes: list[int] = []
    original = batcher._pipeline

    async def counting(batch):
        sizes.append(len(batch))
        return await original(batch)

    batcher._pipeline = counting
    await asyncio.gather(*(batched.append(chat_id, "agent", f"m{i}", 1.0) for i in range(50)))
    assert sum(sizes) == 50 and len(sizes) < 50


async def test_a_closed_chat_fails_only_its_own_append(rds, batched, open_chat):
    """In one batch, an append to a closed chat raises ChatGone; the others are stored."""
    good, closed = await open_chat(), await open_chat(left=True)
    results = await asyncio.gather(batched.append(good, "visitor", "a", 1.0), batched.append(closed, "visitor", "b", 1.0),
                                   batched.append(good, "visitor", "c", 1.0), return_exceptions=True)
    assert isinstance(results[1], ChatGone)
    assert [results[0][0], results[2][0]] == [1, 2]


async def test_appends_survive_a_flushed_script_cache(rds, batched, open_chat):
    """After SCRIPT FLUSH (as after a Redis restart) the batch loads the script and goes on."""
    chat_id = await open_chat()
    await batched.append(chat_id, "visitor", "before", 1.0, "b")
    await rds.script_flush()
    results = await asyncio.gather(*(batched.append(chat_id, "visitor", f"after {i}", 1.0, f"a{i}") for i in range(5)))
    assert [seq for seq, _, _ in results] == [2, 3, 4, 5, 6]


async def test_a_resent_client_id_returns_the_stored_message(rds, batched, open_chat):
    """The same client_id twice in one batch stores one message and acknowledges both."""
    chat_id = await open_chat()
    first, again = await asyncio.gather(batched.append(chat_id, "visitor", "hi", 1.0, "same"),
                                        batched.append(chat_id, "visitor", "hi", 1.0, "same"))
    assert first[0] == again[0] == 1 and first[2] and not again[2]
    assert await rds.llen(keys.chat_log(chat_id)) == 1
