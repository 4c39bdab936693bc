"""The queue snapshot shown to supervisors (`GET /api/queue`, `/ws/supervisor`) and read by
`/metrics`: who is waiting, for how long, who can serve them, and how today went.

Every figure is computed from Redis alone, never from one process's memory, so that every
hub process behind a load balancer shows the same numbers. The snapshot also records one
queue-depth point per minute (keys.QUEUE_HISTORY) for the supervisor's one-hour chart.
"""

from __future__ import annotations

from typing import Any

import msgpack

from chat import frames, keys
from chat.queue import read_agents
from chat.runtime import Runtime
from chat.stats import day, read_stats

HISTORY_SECONDS = 3600  # the chart shows the last hour
HISTORY_KEEP = 2 * HISTORY_SECONDS  # points older than this are trimmed


def _text(value: Any) -> Any:
    """msgpack may hand back bytes for strings packed by older code; show them as text."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _unpack(blob: bytes | None) -> dict[str, Any]:
    if not blob:
        return {}
    try:
        data = msgpack.unpackb(blob, raw=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return {}
    return {(_text(k)): _text(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _number(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


async def record_queue_depth(rt: Runtime, depth: int | None = None, now: float | None = None) -> None:
    """Add this minute's queue-depth point unless some hub already did (SET NX guard), and
    trim points older than two hours. Cheap enough to call on every snapshot; a background
    duty may call it once a minute (no depth: it counts the queue) so that the chart has
    points for minutes when nobody watched."""
    now = rt.clock() if now is None else now
    if depth is None:
        depth = await rt.redis.zcard(keys.QUEUE_ALL)
    minute = int(now // 60) * 60
    if await rt.redis.set(keys.queue_history_mark(minute), b"1", nx=True, ex=180):
        async with rt.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(keys.QUEUE_HISTORY, {f"{minute}:{depth}": minute}, nx=True)
            pipe.zremrangebyscore(keys.QUEUE_HISTORY, "-inf", minute - HISTORY_KEEP)
            await pipe.execute()


async def read_queue_history(rt: Runtime, now: float) -> list[list[float]]:
    """[[minute, depth], ...] over the last hour, oldest first."""
    raw = await rt.redis.zrangebyscore(keys.QUEUE_HISTORY, now - HISTORY_SECONDS, "+inf")
    points = []
    for member in raw:
        minute, _, depth = member.decode().partition(":")
        points.append([float(minute), float(depth)])
    return points


async def list_agents(rt: Runtime) -> list[dict[str, Any]]:
    """Every known agent with its status and load (chats held / capacity)."""
    profiles = await read_agents(rt.redis)
    names = sorted(profiles)
    loads: list[int] = []
    if names:
        async with rt.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.scard(keys.agent_chats(name))
            loads = await pipe.execute()
    agents = []
    for name, load in zip(names, loads):
        info = {_text(k): _text(v) for k, v in profiles[name].items()}
        capacity = int(_number(info.get("max_chats"), 0))
        status = str(info.get("status") or frames.AGENT_OFFLINE)
        agents.append(
            {
                "username": name,
                "name": str(info.get("name") or name),
                "role": str(info.get("role") or "agent"),
                "status": status,
                "langs": [str(_text(l)) for l in info.get("langs") or []],
                "topics": [str(_text(t)) for t in info.get("topics") or []],
                "load": int(load),
                "capacity": capacity,
                "free": max(0, capacity - int(load)) if status == frames.AGENT_ONLINE else 0,
            }
        )
    return agents


async def queue_snapshot(rt: Runtime, record: bool = True) -> dict[str, Any]:
    """The supervisor's picture of the desk right now. Times are seconds; ``at`` is the hub
    clock when computed, so a page can keep ages ticking between pushes.

    Shape (GET /api/queue; /ws/supervisor adds ``"type": "queue"``)::

        at                      hub time of the snapshot (unix seconds)
        waiting                 chats waiting for an agent, all queues
        waiting_by_plan         {plan: n} for every configured plan (zeros included)
        waiting_by_lang         {lang: n} for languages with someone waiting
        oldest_wait             seconds the longest-waiting chat has waited (0 if none)
        oldest_plan             that chat's plan (null if none)
        oldest_max_wait         that plan's max_wait: when the chat becomes a ticket
        emergencies             waiting chats flagged as emergencies
        plans                   [{name, waiting, oldest_wait, max_wait}] lowest plan first
        active                  chats an agent holds now
        agents_online / agents_away / agents_busy (online and full)
        capacity / free_capacity    chats online agents can hold / could still take
        agents                  [{username, name, role, status, langs, topics, load,
                                  capacity, free}] for agents not offline
        tickets_today           {trigger: n} (offline, max_wait, visitor_left, unresolved...)
        tickets_today_total
        avg_wait_today / avg_handle_today   seconds, null before the first of the day
        ratings_today / avg_rating_today    visitors' ratings (1-5) today, their mean (null before the first)
        tickets_open / tickets_due_soon / tickets_breached   open tickets, due within the hour, past due
        tickets_soonest_due     [{ref, plan, due_at, breached, emergency, assignee}] the 10 soonest due
        assignments_today / messages_today
        history                 [[unix_minute, depth], ...] over the last hour, then [at, depth]
        redis_memory            {used_bytes, max_bytes, warning}: see redis_memory
        mail_failed             mails the mail server refused for good (not retried)
        mail_failed_recent      [{id, ref, kind, error, at}] the newest ten of them
    """
    now = rt.clock()
    redis = rt.redis
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zrange(keys.QUEUE_ALL, 0, -1)
        pipe.hgetall(keys.ROUTE)
        waiting_ids, route = await pipe.execute()

    plans = list(rt.config.plans)
    by_plan = {name: 0 for name in plans}
    oldest_by_plan: dict[str, float] = {name: 0.0 for name in plans}
    by_lang: dict[str, int] = {}
    emergencies = 0
    oldest_wait, oldest_plan = 0.0, None
    waiting_set = set(waiting_ids)
    for chat_id in waiting_ids:
        info = _unpack(route.get(chat_id))
        plan = str(info.get("plan") or rt.config.lowest_plan.name)
        lang = str(info.get("lang") or "")
        wait = max(0.0, now - _number(info.get("arrived_at"), now))
        by_plan[plan] = by_plan.get(plan, 0) + 1
        by_lang[lang] = by_lang.get(lang, 0) + 1
        oldest_by_plan[plan] = max(oldest_by_plan.get(plan, 0.0), wait)
        if info.get("emergency"):
            emergencies += 1
        if oldest_plan is None or wait > oldest_wait:
            oldest_wait, oldest_plan = wait, plan

    active = 0
    for chat_id, blob in route.items():
        if chat_id in waiting_set:
            continue
        if _unpack(blob).get("state") == "active":
            active += 1

    agents = await list_agents(rt)
    count = {s: sum(1 for a in agents if a["status"] == s) for s in frames.AGENT_STATUSES}
    present = [a for a in agents if a["status"] != frames.AGENT_OFFLINE]
    busy = sum(1 for a in present if a["capacity"] and a["load"] >= a["capacity"])

    stats = await read_stats(redis)
    today = f"day:{day(now)}:"

    def avg(field: str) -> float | None:
        n = stats.get(f"{today}{field}_count", 0.0)
        return round(stats.get(f"{today}{field}_sum", 0.0) / n, 1) if n else None

    tickets = {t: int(stats.get(f"{today}tickets:{t}", 0)) for t in frames.CHAT_TRIGGERS}
    for field, value in stats.items():  # triggers added later still show up
        if field.startswith(f"{today}tickets:"):
            tickets.setdefault(field[len(today) + 8:], int(value))

    from transcripts.desk import due_overview  # the ticket desk's figures, beside the chat queue's

    due = await due_overview(redis, now)
    mail_failed, mail_failed_recent = await _failed_mail(rt)
    depth = len(waiting_ids)
    if record:
        await record_queue_depth(rt, depth, now)
    history = await read_queue_history(rt, now)
    history.append([now, float(depth)])

    max_wait_of = {name: plan.max_wait for name, plan in rt.config.plans.items()}
    return {
        "at": now,
        "waiting": depth,
        "waiting_by_plan": by_plan,
        "waiting_by_lang": dict(sorted(by_lang.items())),
        "oldest_wait": round(oldest_wait, 1),
        "oldest_plan": oldest_plan,
        "oldest_max_wait": max_wait_of.get(oldest_plan) if oldest_plan else None,
        "emergencies": emergencies,
        "plans": [
            {"name": name, "waiting": by_plan.get(name, 0), "oldest_wait": round(oldest_by_plan.get(name, 0.0), 1),
             "max_wait": max_wait_of.get(name)}
            for name in by_plan
        ],
        "active": active,
        "agents_online": count[frames.AGENT_ONLINE],
        "agents_away": count[frames.AGENT_AWAY],
        "agents_busy": busy,
        "capacity": sum(a["capacity"] for a in agents if a["status"] == frames.AGENT_ONLINE),
        "free_capacity": sum(a["free"] for a in agents),
        "agents": present,
        "tickets_today": tickets,
        "tickets_today_total": sum(tickets.values()),
        "avg_wait_today": avg("wait"),
        "avg_handle_today": avg("handle"),
        "ratings_today": int(stats.get(f"{today}rating_count", 0)),
        "avg_rating_today": avg("rating"),
        "assignments_today": int(stats.get(f"{today}assignments", 0)),
        "tickets_open": due["open"],
        "tickets_due_soon": due["due_soon"],
        "tickets_breached": due["breached"],
        "tickets_soonest_due": due["soonest"],
        "messages_today": int(stats.get(f"{today}messages", 0)),
        "history": history,
        "redis_memory": await redis_memory(rt),
        "mail_failed": mail_failed,
        "mail_failed_recent": mail_failed_recent,
    }


async def redis_memory(rt: Runtime) -> dict[str, Any]:
    """Redis memory against its maxmemory (0 = no limit set). With `noeviction` a full Redis
    refuses every write and every hub answers `unavailable` to everyone, so operators are
    warned ahead: ``warning`` once use passes [limits] redis_memory_warning percent."""
    info = await rt.redis.info("memory")
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    percent = rt.config.limits.redis_memory_warning
    return {"used_bytes": used, "max_bytes": limit, "warning": bool(limit and percent and used * 100 >= limit * percent)}


async def _failed_mail(rt: Runtime, limit: int = 10) -> tuple[int, list[dict[str, Any]]]:
    """How many mails failed for good, and the newest of them (the outbox lives with the
    transcripts, when they are installed)."""
    try:
        from transcripts.outbox import failed_mails
    except ImportError:
        return 0, []
    total = await rt.redis.zcard(keys.OUTBOX_FAILED)
    recent = await failed_mails(rt.redis, limit) if total else []
    return int(total), [{"id": m["id"], "ref": m["ref"], "kind": m["kind"], "error": m["last_error"], "at": m["due"]}
                        for m in recent]


def comparable(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The snapshot without what changes every second by itself (clock, ages, the live
    history point), to tell a real change from the passing of time."""
    skip = {"at", "oldest_wait", "history", "plans", "redis_memory"}
    result = {k: v for k, v in snapshot.items() if k not in skip}
    result["redis_memory_warning"] = snapshot.get("redis_memory", {}).get("warning")
    result["plans"] = [{k: v for k, v in p.items() if k != "oldest_wait"} for p in snapshot.get("plans", [])]
    result["history_len"] = len(snapshot.get("history", []))
    return result
