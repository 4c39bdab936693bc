"""`GET /metrics`: operator figures in the Prometheus text exposition format (version 0.0.4),
written by hand (the format is a few lines of text; no client library needed).

Access: when LIVECHAT_METRICS_TOKEN is set, a scraper must send
``Authorization: Bearer <token>``; when it is not set, only loopback clients are answered
(a Prometheus on the same machine, or behind a reverse proxy that forwards the client's
address, which uvicorn applies for trusted proxies). Anyone else gets 403 - the figures
reveal traffic, never content.

Connections are per hub process (scrape every process; `livechat_process_info` names the
process that answered, since the workers of `serve --workers` share one port); everything
else comes from Redis and is the same on every process.
"""

from __future__ import annotations

import hmac
import os
import ipaddress
from typing import Iterable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from chat import frames
from chat.rollups import DURATION_BUCKETS, read_totals
from chat.runtime import Runtime
from chat.snapshot import queue_snapshot
from chat.stats import WAIT_BUCKETS as STATS_WAIT_BUCKETS, read_stats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WAIT_BUCKETS = (*map(str, STATS_WAIT_BUCKETS), "+Inf")  # the le labels of chat.stats' wait_le_<b> fields


def _token(rt: Runtime) -> str:
    """The bearer token (LIVECHAT_METRICS_TOKEN, read with the other settings)."""
    return rt.settings.metrics_token


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed(request: Request, rt: Runtime) -> bool:
    token = _token(rt)
    if token:
        given = request.headers.get("authorization", "")
        return given.startswith("Bearer ") and hmac.compare_digest(given[7:].strip().encode(), token.encode())
    return _is_loopback(request.client.host if request.client else None)


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str] | None) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _value(number: float) -> str:
    number = float(number)
    return str(int(number)) if number.is_integer() else repr(number)


class Exposition:
    """Collects families in order and renders them as text; one HELP/TYPE per family."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[str, dict | None, float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for suffix, labels, value in samples:
            self.lines.append(f"{name}{suffix}{_labels(labels)} {_value(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def wait_buckets(stats: dict[str, float]) -> list[tuple[str, dict, float]]:
    """Histogram bucket samples from the wait_le_<b> stats fields. chat.stats counts each
    wait in its own bucket only; Prometheus wants cumulative counts. Should the fields ever
    be kept cumulative instead, they are taken as they are (told apart by the total: per-bucket
    counts add up to wait_count, cumulative ones do not)."""
    raw = [stats.get(f"wait_le_{b}", 0.0) for b in WAIT_BUCKETS]
    total = stats.get("wait_count", 0.0)
    if sum(raw) == total:
        running, values = 0.0, []
        for value in raw:
            running += value
            values.append(running)
    else:
        values = [max(raw[: i + 1]) for i in range(len(raw))]
    values[-1] = max(values[-1], total)  # +Inf always equals _count
    return [("_bucket", {"le": b}, v) for b, v in zip(WAIT_BUCKETS, values)]


def plan_histogram(totals: dict[str, float], name: str, plans: list[str]) -> list[tuple[str, dict, float]]:
    """Cumulative bucket, _sum and _count samples per plan of one rollup histogram (the
    all-time copy of chat/rollups.py, whose buckets each count only their own values)."""
    samples: list[tuple[str, dict, float]] = []
    for plan in plans:
        dim = f"plan:{plan}"
        running = 0.0
        for bound in DURATION_BUCKETS:
            running += totals.get(f"{name}.le{bound}|{dim}", 0.0)
            samples.append(("_bucket", {"plan": plan, "le": str(bound)}, running))
        count = totals.get(f"{name}.n|{dim}", 0.0)
        samples.append(("_bucket", {"plan": plan, "le": "+Inf"}, max(count, running)))
        samples.append(("_sum", {"plan": plan}, totals.get(f"{name}.sum|{dim}", 0.0)))
        samples.append(("_count", {"plan": plan}, count))
    return samples


async def render(rt: Runtime, counts: dict[str, int]) -> str:
    """The whole exposition for this process (`counts`: its open sockets by kind)."""
    out = Exposition()
    out.family(
        "livechat_connections", "gauge", "Open WebSocket connections on this hub process, by kind.",
        [("", {"kind": kind}, counts.get(kind, 0)) for kind in sorted({"visitor", "agent", "supervisor", *counts})],
    )
    out.family("livechat_process_info", "gauge",
               "The hub process that answered (pid): with serve --workers, each scrape reaches one worker.",
               [("", {"pid": str(os.getpid())}, 1)])
    snap = await queue_snapshot(rt, record=True)
    out.family(
        "livechat_queue_depth", "gauge", "Chats waiting for an agent, by plan.",
        [("", {"plan": plan}, n) for plan, n in snap["waiting_by_plan"].items()],
    )
    out.family("livechat_queue_oldest_wait_seconds", "gauge", "How long the longest-waiting chat has waited.",
               [("", None, snap["oldest_wait"])])
    out.family("livechat_emergencies_waiting", "gauge", "Waiting chats flagged as emergencies.",
               [("", None, snap["emergencies"])])
    out.family("livechat_chats_active", "gauge", "Chats an agent is handling now.", [("", None, snap["active"])])
    out.family(
        "livechat_agents", "gauge", "Agents by status.",
        [("", {"status": frames.AGENT_ONLINE}, snap["agents_online"]), ("", {"status": frames.AGENT_AWAY}, snap["agents_away"]),
         ("", {"status": "busy"}, snap["agents_busy"])],
    )
    out.family("livechat_agent_free_capacity", "gauge", "Chats the online agents could still take.",
               [("", None, snap["free_capacity"])])
    memory = snap["redis_memory"]
    out.family("livechat_redis_memory_used_bytes", "gauge", "Memory Redis uses.", [("", None, memory["used_bytes"])])
    out.family("livechat_redis_memory_max_bytes", "gauge", "Redis maxmemory (0: no limit set).",
               [("", None, memory["max_bytes"])])
    out.family("livechat_redis_memory_warning", "gauge",
               "1 when Redis memory is past [limits] redis_memory_warning percent of maxmemory.",
               [("", None, 1 if memory["warning"] else 0)])

    out.family("livechat_tickets_open", "gauge", "Open tickets (waiting for an answer from the desk).",
               [("", None, snap["tickets_open"])])
    out.family("livechat_tickets_due_soon", "gauge", "Open tickets whose next answer is due within the hour.",
               [("", None, snap["tickets_due_soon"])])
    out.family("livechat_tickets_breached", "gauge", "Open tickets past their plan's response target.",
               [("", None, snap["tickets_breached"])])

    stats = await read_stats(rt.redis)
    out.family("livechat_assignments_total", "counter", "Chats given to an agent.",
               [("", None, stats.get("assignments", 0))])
    out.family("livechat_messages_total", "counter", "Chat messages stored and relayed.",
               [("", None, stats.get("messages", 0))])
    out_buckets = wait_buckets(stats)
    count = out_buckets[-1][2]
    out.family(
        "livechat_wait_seconds", "histogram", "Time from a chat's arrival in the queue to its assignment.",
        [*out_buckets, ("_sum", None, stats.get("wait_sum", 0.0)), ("_count", None, count)],
    )
    out.family(
        "livechat_handle_seconds", "summary", "Time from assignment to close of handled chats.",
        [("_sum", None, stats.get("handle_sum", 0.0)), ("_count", None, stats.get("handle_count", 0.0))],
    )
    out.family(
        "livechat_rating_score", "summary", "Satisfaction ratings (1 to 5) visitors gave at the end of a chat.",
        [("_sum", None, stats.get("rating_sum", 0.0)), ("_count", None, stats.get("rating_count", 0.0))],
    )
    out.family("livechat_help_viewed_total", "counter", "Help articles opened in the widget.",
               [("", None, stats.get("help_viewed", 0))])
    out.family("livechat_help_solved_total", "counter",
               "Questions a help article answered before any chat was started (deflections).",
               [("", None, stats.get("help_solved", 0))])
    out.family("livechat_help_unanswered_total", "counter", "Questions that became a chat after the widget searched the help centre.",
               [("", None, stats.get("help_unanswered", 0))])
    triggers = set(frames.CHAT_TRIGGERS)
    triggers |= {f[8:] for f in stats if f.startswith("tickets:")}
    out.family(
        "livechat_tickets_total", "counter", "Email tickets made, by what triggered them.",
        [("", {"trigger": t}, stats.get(f"tickets:{t}", 0)) for t in sorted(triggers)],
    )
    totals = await read_totals(rt.redis)
    plans = list(rt.config.plans)
    plans += sorted({f.rpartition("|plan:")[2] for f in totals if "|plan:" in f} - set(plans))
    out.family("livechat_plan_wait_seconds", "histogram",
               "Time from a chat's arrival to its first assignment, by the visitor's plan.",
               plan_histogram(totals, "wait", plans))
    out.family("livechat_plan_first_reply_seconds", "histogram",
               "Time from a chat's assignment to the agent's first message, by the visitor's plan.",
               plan_histogram(totals, "first_reply", plans))
    out.family("livechat_chats_abandoned_total", "counter", "Chats whose visitor left while waiting, by plan.",
               [("", {"plan": plan}, totals.get(f"abandoned|plan:{plan}", 0.0)) for plan in plans])
    out.family("livechat_ratings_total", "counter", "Satisfaction ratings visitors gave, by score (1 to 5).",
               [("", {"score": str(s)}, totals.get(f"rating.{s}|all", 0.0)) for s in range(1, 6)])
    return out.text()


async def metrics(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    if not allowed(request, rt):
        return PlainTextResponse("forbidden: set LIVECHAT_METRICS_TOKEN and send it as a bearer token\n", 403)
    counts = request.app.state.hub.registry.connection_counts()
    return Response(await render(rt, counts), media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


routes = [Route("/metrics", metrics, methods=["GET"])]
