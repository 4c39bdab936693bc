"""Deadlines in Redis: each due deadline is taken by one process, leased rather than
removed until it has been handled, so a process that dies mid-way delays it, never loses it."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from chat import keys, timers
from tests.support.redis import DATABASES, db_url

T = time.time() + 10**6  # any moment will do: these deadlines live in their own database


@pytest.fixture
async def rds(redis_url):
    """A database of its own: the hubs of other tests run their timers in database 0."""
    client = Redis.from_url(db_url(redis_url, DATABASES["timers"]))
    await client.flushdb()
    yield client
    await client.aclose()


async def test_a_taken_deadline_is_not_taken_again_while_leased(rds, lang):
    """Two takers at the same moment: the deadline goes to one of them."""
    await timers.schedule(rds, timers.MAX_WAIT, lang, T + 100)
    first = [t for t in await timers.pop_due(rds, T + 200, lease=60) if t[1] == lang]
    again = [t for t in await timers.pop_due(rds, T + 200, lease=60) if t[1] == lang]
    assert [(k, c) for k, c, _ in first] == [(timers.MAX_WAIT, lang)] and again == []


async def test_a_deadline_whose_taker_died_comes_due_after_the_lease(rds, lang):
    """Taken but never marked done (the process died): due again once the lease has run out."""
    await timers.schedule(rds, timers.OFFLINE_IDLE, lang, T + 100)
    assert [c for _, c, _ in await timers.pop_due(rds, T + 200, lease=60) if c == lang] == [lang]
    assert [c for _, c, _ in await timers.pop_due(rds, T + 259, lease=60) if c == lang] == []
    assert [c for _, c, _ in await timers.pop_due(rds, T + 261, lease=60) if c == lang] == [lang]


async def test_done_forgets_the_deadline(rds, lang):
    """After done, the deadline is gone for good."""
    await timers.schedule(rds, timers.WAIT_CHOICE, lang, T + 100)
    [(kind, chat_id, lease)] = [t for t in await timers.pop_due(rds, T + 200) if t[1] == lang]
    await timers.done(rds, kind, chat_id, lease)
    assert await rds.zscore(keys.TIMERS, f"{kind}|{chat_id}") is None


async def test_done_keeps_a_deadline_set_again_while_it_was_handled(rds, lang):
    """A handler that schedules the same deadline anew (keep waiting) keeps the new one."""
    await timers.schedule(rds, timers.MAX_WAIT, lang, T + 100)
    [(kind, chat_id, lease)] = [t for t in await timers.pop_due(rds, T + 200) if t[1] == lang]
    await timers.schedule(rds, kind, chat_id, T + 900)
    await timers.done(rds, kind, chat_id, lease)
    assert await rds.zscore(keys.TIMERS, f"{kind}|{chat_id}") == T + 900
