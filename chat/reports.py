"""Figures over any date range, from the hourly rollups (chat/rollups.py): what a support
lead asks of a month (did paying customers wait less, which plan's target do we miss, is
satisfaction going up, who needs help), for `GET /api/reports`, its CSV twin, the
supervisors' reports page and `livechat report`.

A range is whole days in the desk's time zone (`[reports] tz`); it is read one UTC hour
bucket at a time and each hour goes to the interval (hour, day, week from Monday, month) its
start falls in, in that time zone. Percentiles come from the histogram buckets: the p50 of
waits is the upper bound of the bucket holding the middle wait (never more than the largest
wait seen), so it says "half the chats waited at most this long".
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from chat import frames, keys
from chat.config import DeskConfig
from chat.rollups import DURATION_BUCKETS, NONE

GROUPS = ("plan", "lang", "topic", "channel", "agent")
INTERVALS = ("hour", "day", "week", "month")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
READ_BATCH = 500  # hour hashes read per round trip

# One row per interval x group: the columns of the JSON rows and of the CSV, in order.
COLUMNS = (
    "interval", "group",
    "offered", "answered", "abandoned", "abandoned_wait_avg", "abandoned_wait_max",
    "wait_avg", "wait_p50", "wait_p90", "wait_max",
    "first_replies", "first_reply_avg", "first_reply_p50", "first_reply_p90",
    "handled", "handle_avg", "handle_p50", "handle_p90",
    "tickets", *(f"tickets_{t}" for t in frames.TRIGGERS), *(f"tickets_channel_{c}" for c in frames.CHANNELS),
    "first_response", "first_response_met", "first_response_missed", "first_response_met_pct", "first_response_p50",
    "next_response", "next_response_met", "next_response_missed", "next_response_met_pct",
    "solved",
    "rated", "csat_avg", *(f"csat_{s}" for s in range(1, 6)), "csat_response_rate",
    "busy_hours", "online_hours", "chats_per_agent",
)


class ReportError(Exception):
    """A report that cannot be made as asked: ``code`` (chat/frames.py) and a message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Query:
    start: date
    end: date  # inclusive
    group: str | None
    interval: str


def parse_query(config: DeskConfig, start: str | None, end: str | None, group: str | None, interval: str | None,
                today: date) -> Query:
    """Check the parameters of /api/reports and `livechat report` (dates YYYY-MM-DD in the
    desk's time zone; by default the last seven days)."""
    try:
        last = date.fromisoformat(end) if end else today
        first = date.fromisoformat(start) if start else last - timedelta(days=6)
    except ValueError:
        raise ReportError(frames.BAD_QUERY, "from and to must be dates like 2026-05-31") from None
    if first > last:
        raise ReportError(frames.BAD_QUERY, "from must not be after to")
    if (last - first).days + 1 > config.reports.keep_days + 1:
        raise ReportError(frames.RANGE_TOO_LONG,
                          f"a report covers at most [reports] keep_days ({config.reports.keep_days:g}) days")
    group = group or None
    if group is not None and group not in GROUPS:
        raise ReportError(frames.BAD_QUERY, f"group must be one of {', '.join(GROUPS)}")
    interval = interval or "day"
    if interval not in INTERVALS:
        raise ReportError(frames.BAD_QUERY, f"interval must be one of {', '.join(INTERVALS)}")
    return Query(first, last, group, interval)


def _hours(query: Query, tz: ZoneInfo) -> list[datetime]:
    """The UTC hours whose start falls in the range's local days."""
    begin = datetime.combine(query.start, time(0), tz).astimezone(timezone.utc)
    finish = datetime.combine(query.end + timedelta(days=1), time(0), tz).astimezone(timezone.utc)
    hour = begin.replace(minute=0, second=0, microsecond=0)
    if hour < begin:
        hour += timedelta(hours=1)
    out = []
    while hour < finish:
        out.append(hour)
        hour += timedelta(hours=1)
    return out


def _label(local: datetime, interval: str) -> str:
    if interval == "hour":
        return local.strftime("%Y-%m-%dT%H:00")
    if interval == "day":
        return local.strftime("%Y-%m-%d")
    if interval == "week":
        return (local.date() - timedelta(days=local.weekday())).isoformat()
    return local.strftime("%Y-%m")


async def read_hours(redis: Redis, hours: list[datetime]) -> list[dict[bytes, bytes]]:
    """One HGETALL per hour bucket, batched in round trips."""
    found: list[dict[bytes, bytes]] = []
    for i in range(0, len(hours), READ_BATCH):
        async with redis.pipeline(transaction=False) as pipe:
            for hour in hours[i:i + READ_BATCH]:
                pipe.hgetall(keys.rollup(hour.strftime("%Y%m%d%H")))
            found += await pipe.execute()
    return found


# --- figures from a cell's sums --------------------------------------------------------------


def percentile(cell: dict[str, float], name: str, q: float) -> float | None:
    """The upper bound of the bucket holding the q-th value (at most the largest value)."""
    n = cell.get(f"{name}.n", 0)
    if not n:
        return None
    rank, running = math.ceil(q * n), 0.0
    largest = cell.get(f"{name}.max", 0.0)
    for bound in DURATION_BUCKETS:
        running += cell.get(f"{name}.le{bound}", 0)
        if running >= rank:
            return round(min(float(bound), largest), 3)
    return round(largest, 3)


def _avg(cell: dict[str, float], name: str) -> float | None:
    n = cell.get(f"{name}.n", 0)
    return round(cell.get(f"{name}.sum", 0) / n, 3) if n else None


def _max(cell: dict[str, float], name: str) -> float | None:
    return round(cell[f"{name}.max"], 3) if cell.get(f"{name}.n") else None


def _pct(part: float, whole: float) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _int(cell: dict[str, float], name: str) -> int:
    return int(round(cell.get(name, 0)))


def figures(cell: dict[str, float]) -> dict[str, Any]:
    """The row figures (COLUMNS but interval and group) from one cell's summed fields."""
    rated = _int(cell, "rated")
    handled = _int(cell, "handled")
    busy, online = cell.get("busy_s", 0.0), cell.get("online_s", 0.0)
    row: dict[str, Any] = {
        "offered": _int(cell, "offered"), "answered": _int(cell, "answered"), "abandoned": _int(cell, "abandoned"),
        "abandoned_wait_avg": _avg(cell, "abandoned_wait"), "abandoned_wait_max": _max(cell, "abandoned_wait"),
        "wait_avg": _avg(cell, "wait"), "wait_p50": percentile(cell, "wait", 0.5),
        "wait_p90": percentile(cell, "wait", 0.9), "wait_max": _max(cell, "wait"),
        "first_replies": _int(cell, "first_reply.n"), "first_reply_avg": _avg(cell, "first_reply"), "first_reply_p50": percentile(cell, "first_reply", 0.5),
        "first_reply_p90": percentile(cell, "first_reply", 0.9),
        "handled": handled, "handle_avg": _avg(cell, "handle"), "handle_p50": percentile(cell, "handle", 0.5),
        "handle_p90": percentile(cell, "handle", 0.9),
        "tickets": _int(cell, "tickets"),
        **{f"tickets_{t}": _int(cell, f"tickets.trigger.{t}") for t in frames.TRIGGERS},
        **{f"tickets_channel_{c}": _int(cell, f"tickets.channel.{c}") for c in frames.CHANNELS},
        "solved": _int(cell, "solved"),
        "rated": rated,
        "csat_avg": round(cell.get("rating_sum", 0) / rated, 2) if rated else None,
        **{f"csat_{s}": _int(cell, f"rating.{s}") for s in range(1, 6)},
        "csat_response_rate": _pct(rated, handled),
        "busy_hours": round(busy / 3600, 4), "online_hours": round(online / 3600, 4),
        "chats_per_agent": round(busy / online, 2) if online else None,
    }
    for which in ("first", "next"):
        met, missed = _int(cell, f"{which}_response.met"), _int(cell, f"{which}_response.missed")
        row[f"{which}_response"] = _int(cell, f"{which}_response")
        row[f"{which}_response_met"], row[f"{which}_response_missed"] = met, missed
        row[f"{which}_response_met_pct"] = _pct(met, met + missed)
    row["first_response_p50"] = percentile(cell, "ticket_first", 0.5)
    return row


def _add(cell: dict[str, float], metric: str, value: float) -> None:
    if metric.endswith(".max"):
        cell[metric] = max(cell.get(metric, value), value)
    else:
        cell[metric] = cell.get(metric, 0.0) + value


def compute(query: Query, tz: ZoneInfo, hours: list[datetime], raw: list[dict[bytes, bytes]],
            plan_order: dict[str, int] | None = None) -> dict[str, Any]:
    """The whole report from the hour hashes (CPU work: run it in a thread)."""
    wanted = "all" if query.group is None else query.group
    labels: list[str] = []
    cells: dict[tuple[str, str], dict[str, float]] = {}
    totals: dict[str, dict[str, float]] = {}
    agents: dict[str, dict[str, float]] = {}
    desk: dict[str, dict[str, float]] = {}
    week = [[0] * 24 for _ in WEEKDAYS]
    for hour, fields in zip(hours, raw):
        local = hour.astimezone(tz)
        label = _label(local, query.interval)
        if not labels or labels[-1] != label:
            labels.append(label)
        for key, value in fields.items():
            metric, _, dim = key.decode("utf-8", "replace").partition("|")
            number = float(value)
            name, _, group_value = dim.partition(":")
            if dim == "all":
                _add(desk.setdefault(label, {}), metric, number)
                if metric == "offered":
                    week[local.weekday()][local.hour] += int(number)
            if name == "agent":
                _add(agents.setdefault(group_value, {}), metric, number)
            if name != wanted:
                continue
            group = "all" if name == "all" else group_value
            _add(cells.setdefault((label, group), {}), metric, number)
            _add(totals.setdefault(group, {}), metric, number)
    groups = sorted(totals, key=lambda g: (g == NONE, g))
    if query.group == "plan":  # lowest plan first, as configured, then any plan no longer configured
        groups.sort(key=lambda g: ((plan_order or {}).get(g, len(plan_order or {})), g))
    if query.group is None:
        groups = ["all"]
    rows = [{"interval": label, "group": group, **figures(cells.get((label, group), {}))}
            for label in labels for group in groups]
    leaderboard = []
    for agent, cell in agents.items():
        fig = figures(cell)
        leaderboard.append({"agent": agent, "chats": fig["answered"], "handled": fig["handled"],
                            "first_reply_p50": fig["first_reply_p50"], "handle_avg": fig["handle_avg"],
                            "csat_avg": fig["csat_avg"], "rated": fig["rated"],
                            "ticket_responses": fig["first_response"] + fig["next_response"],
                            "online_hours": fig["online_hours"], "chats_per_agent": fig["chats_per_agent"]})
    leaderboard.sort(key=lambda a: (-a["chats"], a["agent"]))
    busiest = sorted(((week[d][h], d, h) for d in range(7) for h in range(24) if week[d][h]), reverse=True)[:5]
    return {
        "from": query.start.isoformat(), "to": query.end.isoformat(), "tz": str(tz.key),
        "group": query.group, "interval": query.interval, "columns": list(COLUMNS),
        "rows": rows,
        "totals": [{"interval": "total", "group": g, **figures(totals.get(g, {}))} for g in groups],
        "leaderboard": leaderboard,
        "concurrency": [{"interval": label, "busy_hours": round(desk.get(label, {}).get("busy_s", 0) / 3600, 4),
                         "online_hours": round(desk.get(label, {}).get("online_s", 0) / 3600, 4),
                         "chats_per_agent": figures(desk.get(label, {}))["chats_per_agent"]} for label in labels],
        "week": {"days": list(WEEKDAYS), "offered": week},
        "busiest": [{"weekday": WEEKDAYS[d], "hour": h, "offered": n} for n, d, h in busiest],
        "buckets": list(DURATION_BUCKETS),
    }


async def build_report(redis: Redis, config: DeskConfig, query: Query) -> dict[str, Any]:
    """The report for a range and grouping: rows per interval x group, totals per group,
    the agent leaderboard, concurrency per interval and the busiest hours of the week."""
    tz = config.report_tz
    hours = _hours(query, tz)
    raw = await read_hours(redis, hours)
    plan_order = {name: plan.rank for name, plan in config.plans.items()}
    return await asyncio.to_thread(compute, query, tz, hours, raw, plan_order)


def _cell(value: Any) -> Any:
    """A CSV cell: empty for no figure; text that a spreadsheet would run as a formula is quoted."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(report: dict[str, Any]) -> str:
    """One line per interval x group, with the report's columns as header."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(report["columns"])
    for row in report["rows"]:
        writer.writerow([_cell(row[c]) for c in report["columns"]])
    return out.getvalue()


def today_in(config: DeskConfig, now: float) -> date:
    return datetime.fromtimestamp(now, config.report_tz).date()
