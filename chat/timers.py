"""Deadlines kept in Redis (not in process memory), each taken by exactly one hub or worker,
and surviving restarts and crashes (a taken deadline is leased, not removed, until handled)."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from chat import keys
from chat.store import Lua, lease_due

MAX_WAIT = "max_wait"          # a queued chat reached its plan's max_wait: offer a ticket
WAIT_CHOICE = "wait_choice"    # the visitor did not answer the offer in time: make the ticket
OFFLINE_IDLE = "offline_idle"  # an offline chat went quiet: make the ticket


def member(kind: str, chat_id: str) -> str:
    """The TIMERS entry of one deadline of one chat (scripts that schedule it take it as is)."""
    return f"{kind}|{chat_id}"


async def schedule(redis: Redis, kind: str, chat_id: str, at: float) -> None:
    await schedule_on(redis, kind, chat_id, at)


def schedule_on(target: Any, kind: str, chat_id: str, at: float) -> Any:
    """``schedule`` on a client (awaitable) or on a pipeline the caller executes."""
    return target.zadd(keys.TIMERS, {member(kind, chat_id): at})


async def cancel(redis: Redis, kind: str, chat_id: str) -> None:
    await redis.zrem(keys.TIMERS, member(kind, chat_id))


def cancel_all_members(chat_id: str) -> list[str]:
    """Every deadline a chat can have, for a ZREM (in a pipeline or alone)."""
    return [member(k, chat_id) for k in (MAX_WAIT, WAIT_CHOICE, OFFLINE_IDLE)]


async def cancel_all(redis: Redis, chat_id: str) -> None:
    await redis.zrem(keys.TIMERS, *cancel_all_members(chat_id))


LEASE = 60.0  # seconds a taken deadline stays with its taker before anyone may take it again

# KEYS: TIMERS, TIMER_FAILURES; ARGV: member, lease time. Removes the entry unless it was
# scheduled anew meanwhile, and forgets its failed attempts.
DONE_SCRIPT = Lua("""
redis.call('HDEL', KEYS[2], ARGV[1])
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
""")

RETRY_BASE = 1.0    # seconds before a failed deadline is tried again; doubles per failure
RETRY_CAP = 600.0   # never longer than this between attempts

# KEYS: TIMERS, TIMER_FAILURES; ARGV: member, lease time, now, base, cap. Counts the failure and
# moves the entry to its next attempt, unless it was scheduled anew meanwhile; returns the delay.
RETRY_SCRIPT = Lua("""
local n = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
local delay = math.min(tonumber(ARGV[5]), tonumber(ARGV[4]) * 2 ^ (n - 1))
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], tostring(tonumber(ARGV[3]) + delay), ARGV[1])
end
return tostring(delay)
""")


async def pop_due(redis: Redis, now: float, limit: int = 100, lease: float = LEASE) -> list[tuple[str, str, float]]:
    """Deadlines that have passed, each taken by exactly one caller: (kind, chat id, lease).
    Call ``done`` after handling one; until then (or if the caller dies) it is leased, and it
    comes due again when the lease runs out: a crash delays a deadline, never loses it."""
    until = now + lease
    due = await lease_due(redis, keys.TIMERS, now, until, limit)
    result = []
    for member in due:
        kind, _, chat_id = member.decode().partition("|")
        result.append((kind, chat_id, until))
    return result


async def done(redis: Redis, kind: str, chat_id: str, lease: float) -> None:
    """The deadline taken with ``pop_due`` was handled: forget it (unless it was set again)."""
    await DONE_SCRIPT(redis, [keys.TIMERS, keys.TIMER_FAILURES], [member(kind, chat_id), repr(lease)])


async def failed(redis: Redis, kind: str, chat_id: str, lease: float, now: float) -> float:
    """Handling the deadline taken with ``pop_due`` raised: try it again later, waiting twice
    as long after each failure (RETRY_BASE up to RETRY_CAP), so that one chat whose handling
    keeps failing neither holds up the others nor floods the log. Returns the delay."""
    delay = await RETRY_SCRIPT(redis, [keys.TIMERS, keys.TIMER_FAILURES],
                               [member(kind, chat_id), repr(lease), repr(now), repr(RETRY_BASE), repr(RETRY_CAP)])
    return float(delay)
