"""Reports over time, written as events happen: one Redis hash per UTC hour (keys.rollup)
with counters and fixed-bucket histograms, each kept per dimension (plan, language, topic,
channel, agent) and for everything together ("all").

Why this shape: a support lead asks about months, and the chats themselves are purged after
`[retention] days`. The hour buckets hold no personal data (no name, address, text or chat
id), so they are kept for `[reports] keep_days`; a report reads at most one hash per hour
(chat/reports.py). Each event costs one script call with a fixed number of fields: O(1).

Any number of hubs record the same events (two of them closing the same chat, an agent's
sockets on two hubs): each event has a marker (kind + chat id or ticket reference, keys.
rollup_mark) set with NX in the same script as the additions, so an event is counted once,
whoever records it and however often. The marker expires with retention, like the chat it
names.

Field names: ``metric|dim`` with dim ``all`` or ``name:value``. A histogram ``h`` adds
``h.n``, ``h.sum``, ``h.max`` and the bucket ``h.le<bound>`` (or ``h.leinf``) the value falls
in (not cumulative). An all-time copy for the "all" and plan dimensions (keys.ROLLUP_TOTALS,
no TTL) feeds /metrics.
"""

from __future__ import annotations

import functools
import math
from datetime import datetime, timezone
from typing import Any

from redis.asyncio import Redis

from chat import keys
from chat.runtime import Runtime
from chat.store import Lua

# Upper bounds (seconds) of the duration histograms: waits and replies in seconds to minutes,
# ticket responses in hours to days. Percentiles are read from these buckets (chat/reports.py).
DURATION_BUCKETS = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1200, 1800, 3600,
                    7200, 14400, 28800, 86400, 172800, 604800)
NONE = "(none)"        # the value of a dimension an event does not have (a chat without topic)
MAX_SPREAD_HOURS = 168  # a span (handling, time online) longer than a week counts its last week only

# KEYS: marker, then the hashes to add to. ARGV: marker TTL, then per hash: EXPIREAT (0 =
# none), number of operations, and that many (op, field, amount) triples; op "i" adds, "m"
# keeps the maximum. Returns 1 when counted, 0 when this event was counted before.
_RECORD = Lua("""
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
local a = 2
for k = 2, #KEYS do
  local expire_at, n = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  for _ = 1, n do
    local op, f, v = ARGV[a], ARGV[a + 1], ARGV[a + 2]
    a = a + 3
    if op == 'm' then
      local cur = tonumber(redis.call('HGET', KEYS[k], f))
      if not cur or tonumber(v) > cur then redis.call('HSET', KEYS[k], f, v) end
    else
      redis.call('HINCRBYFLOAT', KEYS[k], f, v)
    end
  end
  if expire_at > 0 then redis.call('EXPIREAT', KEYS[k], expire_at) end
end
return 1
""")

# KEYS: AGENTS_ONLINE_SINCE; ARGV: username. Take (read and delete) when the agent went online.
_TAKE_SINCE = Lua("""
local since = redis.call('HGET', KEYS[1], ARGV[1])
if since then redis.call('HDEL', KEYS[1], ARGV[1]) end
return since
""")


def hour_of(ts: float) -> str:
    """The UTC hour bucket of a time, ``YYYYMMDDHH``."""
    return _hour(int(ts // 3600))


@functools.lru_cache(maxsize=64)
def _hour(number: int) -> str:
    # Formatted once an hour, not for every addition of every event.
    return datetime.fromtimestamp(number * 3600, timezone.utc).strftime("%Y%m%d%H")


@functools.lru_cache(maxsize=64)
def _hour_start(hour: str) -> int:
    return int(datetime.strptime(hour, "%Y%m%d%H").replace(tzinfo=timezone.utc).timestamp())


def bucket_name(seconds: float) -> str:
    """The histogram bucket a duration falls in: ``le30`` (at most 30 s) or ``leinf``."""
    for bound in DURATION_BUCKETS:
        if seconds <= bound:
            return f"le{bound}"
    return "leinf"


def _amount(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Event:
    """The additions of one event, to be recorded once (see the module docstring)."""

    def __init__(self, kind: str, event_id: str, dims: dict[str, str | None]):
        self.kind, self.event_id = kind, event_id
        self.dims = ["all"] + [f"{name}:{value or NONE}" for name, value in dims.items()]
        self.hours: dict[str, list[str]] = {}
        self.totals: list[str] = []

    def _add(self, at: float, op: str, name: str, amount: float, dims: list[str] | None = None) -> None:
        ops = self.hours.setdefault(hour_of(at), [])
        for dim in self.dims if dims is None else dims:
            ops += [op, f"{name}|{dim}", _amount(amount)]
            if dims is None and (dim == "all" or dim.startswith("plan:")):
                self.totals += [op, f"{name}|{dim}", _amount(amount)]

    def count(self, at: float, name: str, amount: float = 1) -> "Event":
        self._add(at, "i", name, amount)
        return self

    def observe(self, at: float, name: str, seconds: float) -> "Event":
        """One value of the histogram ``name`` (a duration in seconds)."""
        seconds = max(0.0, float(seconds))
        self._add(at, "i", f"{name}.n", 1)
        self._add(at, "i", f"{name}.sum", round(seconds, 3))
        self._add(at, "m", f"{name}.max", round(seconds, 3))
        self._add(at, "i", f"{name}.{bucket_name(seconds)}", 1)
        return self

    def spread(self, start: float, end: float, name: str, dims: list[str]) -> "Event":
        """Add the seconds of [start, end) to ``name`` in each hour they fall in (busy time,
        time online), for the given dimensions only; hours before the last week are left out."""
        start = max(start, end - MAX_SPREAD_HOURS * 3600)
        at = start
        while at < end:
            next_hour = (math.floor(at / 3600) + 1) * 3600
            self._add(at, "i", name, round(min(end, next_hour) - at, 3), dims)
            at = next_hour
        return self

    def _script_args(self, rt: Runtime) -> tuple[list[str], list[str]]:
        keep = int(rt.config.reports.keep_days * 86400)
        marker_ttl = int(rt.config.retention_days * 86400) or 86400
        hash_keys, args = [keys.ROLLUP_TOTALS], [str(marker_ttl), "0", str(len(self.totals) // 3), *self.totals]
        for hour, ops in self.hours.items():
            hash_keys.append(keys.rollup(hour))
            args += [str(_hour_start(hour) + 3600 + keep), str(len(ops) // 3), *ops]
        return [keys.rollup_mark(self.kind, self.event_id), *hash_keys], args

    def queue_on(self, pipe: Any, rt: Runtime) -> None:
        """Record on a pipeline (or MULTI) the caller executes (with chat.store.execute), with
        the caller's other writes."""
        event_keys, args = self._script_args(rt)
        _RECORD.queue_on(pipe, event_keys, args)

    def packed(self, rt: Runtime) -> list[list[str]]:
        """The event as plain data ([keys, args]), recorded later by :func:`record_packed`: a
        ticket's change keeps it in the ticket's own slot (its follow-ups), since the report
        hashes live in another slot of a cluster."""
        event_keys, args = self._script_args(rt)
        return [event_keys, args]

    async def record(self, rt: Runtime) -> bool:
        """Record now; False when this event was counted before (by this or another hub)."""
        event_keys, args = self._script_args(rt)
        return bool(await _RECORD(rt.redis, event_keys, args))


# --- the events ----------------------------------------------------------------------------


def chat_dims(chat: dict[str, Any], agent: str | None = None) -> dict[str, str | None]:
    """The dimensions of a chat event: no personal data, only what reports group by. An
    event with no agent (queued, abandoned) has no agent dimension at all."""
    agent = agent if agent is not None else chat.get("agent")
    dims = {"plan": chat.get("plan"), "lang": chat.get("lang"), "topic": chat.get("topic"), "channel": "chat"}
    return {**dims, "agent": agent} if agent else dims


def ticket_dims(ticket: dict[str, Any], agent: str | None = None) -> dict[str, str | None]:
    dims = {"plan": ticket.get("plan"), "lang": ticket.get("lang"), "topic": ticket.get("topic"),
            "channel": ticket.get("channel") or "chat"}
    return {**dims, "agent": agent} if agent else dims


def chat_queued_on(pipe: Any, rt: Runtime, chat_id: str, chat: dict[str, Any], now: float) -> None:
    """A chat asked for an agent (offered); on the caller's pipeline."""
    Event("queued", chat_id, chat_dims(chat, "")).count(now, "offered").queue_on(pipe, rt)


def chat_assigned_on(pipe: Any, rt: Runtime, chat_id: str, chat: dict[str, Any], agent: str, waited: float,
                     now: float) -> None:
    """A chat's first assignment (answered), with how long it waited; on the caller's pipeline."""
    Event("assigned", chat_id, chat_dims(chat, agent)).count(now, "answered").observe(now, "wait", waited).queue_on(pipe, rt)


async def chat_first_reply(rt: Runtime, chat_id: str, agent: str, now: float) -> None:
    """The first message an agent wrote in a chat: time to first reply, from the assignment."""
    fields = ("plan", "lang", "topic", "assigned_at")
    values = await rt.redis.hmget(keys.chat(chat_id), fields)
    chat = {k: v.decode() for k, v in zip(fields, values) if v is not None}
    if not chat.get("assigned_at"):
        return
    await Event("first_reply", chat_id, chat_dims(chat, agent)).observe(
        now, "first_reply", now - float(chat["assigned_at"])).record(rt)


def chat_closed_on(pipe: Any, rt: Runtime, chat_id: str, chat: dict[str, Any], now: float) -> None:
    """A chat an agent handled ended: handling time, and the agent's busy time hour by hour
    (concurrency: chats per agent = busy seconds / online seconds)."""
    agent = chat.get("agent") or None
    assigned = float(chat["assigned_at"])
    event = Event("closed", chat_id, chat_dims(chat, agent)).count(now, "handled").observe(now, "handle", now - assigned)
    event.spread(assigned, now, "busy_s", ["all", *([f"agent:{agent}"] if agent else [])])
    event.queue_on(pipe, rt)


async def chat_abandoned(rt: Runtime, chat_id: str, chat: dict[str, Any], now: float) -> None:
    """The visitor left while waiting for an agent, after waiting this long."""
    waited = now - float(chat.get("arrived_at") or now)
    await Event("abandoned", chat_id, chat_dims(chat, "")).count(now, "abandoned").observe(
        now, "abandoned_wait", waited).record(rt)


async def chat_rated(rt: Runtime, chat_id: str, chat: dict[str, Any], score: int, now: float) -> None:
    """The visitor rated the chat (1 to 5)."""
    await Event("rated", chat_id, chat_dims(chat)).count(now, "rated").count(now, "rating_sum", score).count(
        now, f"rating.{score}").record(rt)


async def ticket_made(rt: Runtime, ref: str, ticket: dict[str, Any], trigger: str, now: float) -> None:
    """A ticket was opened: by what trigger, on what channel (chat or email)."""
    channel = ticket.get("channel") or "chat"
    await Event("ticket", ref, ticket_dims(ticket)).count(now, "tickets").count(now, f"tickets.trigger.{trigger}").count(
        now, f"tickets.channel.{channel}").record(rt)


async def record_packed(redis: Redis, packed: list[list[str]]) -> bool:
    """Record an event kept as :meth:`Event.packed`; False when it was counted before (so a
    follow-up done twice, after a crash, counts once)."""
    event_keys, args = packed
    return bool(await _RECORD(redis, event_keys, args))


def ticket_response(rt: Runtime, ref: str, reply_id: str, ticket: dict[str, Any], agent: str, now: float) -> Event:
    """An agent's public answer to a ticket waiting for us: first or next response, its
    time since the customer wrote, and whether its plan's target (``due_at``) was met
    (recorded as one of the reply's follow-ups)."""
    which = "next" if ticket.get("first_response_at") else "first"
    due = ticket.get("due_at")
    event = Event("response", f"{ref}:{reply_id}", ticket_dims(ticket, agent))
    event.count(now, f"{which}_response")
    if due is not None:
        event.count(now, f"{which}_response.{'met' if now <= float(due) else 'missed'}")
    if ticket.get("awaiting_since") is not None:
        event.observe(now, f"ticket_{which}", now - float(ticket["awaiting_since"]))
    return event


def ticket_solved(rt: Runtime, ref: str, ticket: dict[str, Any], now: float) -> Event:
    """A ticket was solved (each time: a reopened ticket solved again counts again)."""
    return Event("solved", f"{ref}:{now!r}", ticket_dims(ticket, ticket.get("assignee") or None)).count(now, "solved")


async def agent_online(rt: Runtime, username: str, now: float) -> None:
    """The agent went online: remember since when (the first of several sockets wins)."""
    await rt.redis.hsetnx(keys.AGENTS_ONLINE_SINCE, username, repr(now))


async def agent_offline(rt: Runtime, username: str, now: float) -> None:
    """The agent went away or offline: its time online goes to the hours it spans."""
    since = await _TAKE_SINCE(rt.redis, [keys.AGENTS_ONLINE_SINCE], [username])
    if since is None or float(since) >= now:
        return
    await Event("online", f"{username}:{float(since)!r}", {}).spread(
        float(since), now, "online_s", ["all", f"agent:{username}"]).record(rt)


async def read_totals(redis: Redis) -> dict[str, float]:
    """The all-time counters and histograms by plan (for /metrics)."""
    raw = await redis.hgetall(keys.ROLLUP_TOTALS)
    return {k.decode(): float(v) for k, v in raw.items()}
