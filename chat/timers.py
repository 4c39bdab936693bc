"""Deadlines kept in Redis (not in process memory), fired exactly once by whichever hub or
worker removes them first, and surviving restarts."""

from __future__ import annotations

from redis.asyncio import Redis

from chat import keys

MAX_WAIT = "max_wait"          # a queued chat reached its plan's max_wait: offer a ticket
WAIT_CHOICE = "wait_choice"    # the visitor did not answer the offer in time: make the ticket
OFFLINE_IDLE = "offline_idle"  # an offline chat went quiet: make the ticket


def _member(kind: str, chat_id: str) -> str:
    return f"{kind}|{chat_id}"


async def schedule(redis: Redis, kind: str, chat_id: str, at: float) -> None:
    await redis.zadd(keys.TIMERS, {_member(kind, chat_id): at})


async def cancel(redis: Redis, kind: str, chat_id: str) -> None:
    await redis.zrem(keys.TIMERS, _member(kind, chat_id))


def cancel_all_members(chat_id: str) -> list[str]:
    """Every deadline a chat can have, for a ZREM (in a pipeline or alone)."""
    return [_member(k, chat_id) for k in (MAX_WAIT, WAIT_CHOICE, OFFLINE_IDLE)]


async def cancel_all(redis: Redis, chat_id: str) -> None:
    await redis.zrem(keys.TIMERS, *cancel_all_members(chat_id))


async def pop_due(redis: Redis, now: float, limit: int = 100) -> list[tuple[str, str]]:
    """Deadlines that have passed and that this process won (ZREM returned 1)."""
    due = await redis.zrangebyscore(keys.TIMERS, "-inf", now, start=0, num=limit)
    if not due:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for member in due:
            pipe.zrem(keys.TIMERS, member)
        won = await pipe.execute()
    result = []
    for member, removed in zip(due, won):
        if removed:
            kind, _, chat_id = member.decode().partition("|")
            result.append((kind, chat_id))
    return result
