"""Running figures kept in Redis (so every hub reports the same): assignments, waits,
handling times, tickets by trigger, messages relayed; all-time and per UTC day."""

from __future__ import annotations

import functools
import time
from datetime import datetime, timezone

from redis.asyncio import Redis

from chat import keys
from chat.store import Lua

WAIT_BUCKETS = (5, 15, 30, 60, 120, 300, 600)
AHT_WEIGHT = 0.2  # weight of the newest handling time in the running average used for ETAs


def day(now: float) -> str:
    """The UTC day of a time, ``YYYY-MM-DD`` (a UTC day is 86,400 s of unix time)."""
    return _day(int(now // 86400))


@functools.lru_cache(maxsize=8)
def _day(number: int) -> str:
    # Formatted once a day, not on every figure of every freed slot.
    return datetime.fromtimestamp(number * 86400, timezone.utc).strftime("%Y-%m-%d")


def _both(pipe, field: str, amount: float, now: float) -> None:
    pipe.hincrbyfloat(keys.STATS, field, amount)
    pipe.hincrbyfloat(keys.STATS, f"day:{day(now)}:{field}", amount)


def add_assignment(pipe, waited: float, now: float) -> None:
    """Queue the figures of one assignment on a pipeline the caller executes."""
    _both(pipe, "assignments", 1, now)
    _both(pipe, "wait_sum", waited, now)
    _both(pipe, "wait_count", 1, now)
    bucket = next((f"wait_le_{b}" for b in WAIT_BUCKETS if waited <= b), "wait_le_+Inf")
    _both(pipe, bucket, 1, now)


# KEYS: STATS; ARGV: the handling time just recorded, AHT_WEIGHT. Read and write in one step,
# so two hubs closing chats at the same moment both count in the average.
_AHT_SCRIPT = Lua("""
local old = tonumber(redis.call('HGET', KEYS[1], 'aht'))
local handled, weight = tonumber(ARGV[1]), tonumber(ARGV[2])
local aht = handled
if old then aht = (1 - weight) * old + weight * handled end
redis.call('HSET', KEYS[1], 'aht', string.format('%.17g', aht))
""")


def add_handled(pipe, handled: float, now: float) -> None:
    """Queue one chat's handling time on a pipeline the caller executes; it also moves the
    running average (``aht``) that waiting visitors' ETAs are computed from. The caller runs
    the pipeline with chat.store.execute."""
    _both(pipe, "handle_sum", handled, now)
    _both(pipe, "handle_count", 1, now)
    _AHT_SCRIPT.queue_on(pipe, [keys.STATS], [repr(handled), repr(AHT_WEIGHT)])


async def record_ticket(redis: Redis, trigger: str, now: float) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        _both(pipe, f"tickets:{trigger}", 1, now)
        await pipe.execute()


async def record_rating(redis: Redis, score: int, now: float) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        _both(pipe, "rating_sum", score, now)
        _both(pipe, "rating_count", 1, now)
        await pipe.execute()


class MessageCounter:
    """Counts relayed messages in memory and adds them to Redis now and then, to keep
    an extra round trip off the message path."""

    def __init__(self) -> None:
        self.pending = 0

    def add(self, n: int = 1) -> None:
        self.pending += n

    async def flush(self, redis: Redis) -> None:
        if self.pending:
            n, self.pending = self.pending, 0
            async with redis.pipeline(transaction=False) as pipe:
                _both(pipe, "messages", n, time.time())
                await pipe.execute()


async def read_stats(redis: Redis) -> dict[str, float]:
    raw = await redis.hgetall(keys.STATS)
    return {k.decode(): float(v) for k, v in raw.items()}


async def record_count(redis: Redis, name: str, now: float, amount: float = 1) -> None:
    """Add to one running figure (all-time and today's), e.g. help_viewed, help_solved."""
    async with redis.pipeline(transaction=False) as pipe:
        _both(pipe, name, amount, now)
        await pipe.execute()
