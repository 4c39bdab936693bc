"""The desk's policy file (LIVECHAT_CONFIG, TOML): plans, schedules, emergencies and timers.

A broken file stops the server with a ConfigError naming the file, the key and the fault.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chat.plans import ALWAYS, DAY_NAMES, Plan, Schedule

DEFAULT_TOML = """
# Plans are listed lowest first; a visitor without a valid identity token is on the first.
[plans.free]
head_start = 0          # seconds of virtual arrival advantage in the queue
max_wait = 600          # seconds in the queue before the chat turns into an email ticket
hours = "office"        # "24/7" or the name of a [schedules.NAME] table
live_chat = true

[plans.plus]
head_start = 120
max_wait = 900
hours = "office"
live_chat = true

[plans.professional]
head_start = 300
max_wait = 1200
hours = "extended"
live_chat = true

[plans.visionary]
head_start = 900
max_wait = 1800
hours = "24/7"
live_chat = true

[schedules.office]
tz = "Europe/Brussels"
days = ["mon", "tue", "wed", "thu", "fri"]
opens = "09:00"
closes = "18:00"

[schedules.extended]
tz = "Europe/Brussels"
days = ["mon", "tue", "wed", "thu", "fri", "sat"]
opens = "08:00"
closes = "20:00"

[emergency]
head_start = 3600       # an emergency is served ahead of everyone who arrived in the last hour
guard_ttl = 3600        # an unverified visitor may flag one emergency per hour

[timing]
agent_grace = 30        # seconds an agent may be disconnected before its chats return to the queue
visitor_grace = 60      # seconds a waiting visitor may be disconnected before the chat ends
offline_idle = 600      # an offline chat (leave-a-message) idle this long becomes a ticket
wait_choice_timeout = 60  # seconds to answer "keep waiting or be emailed" before a ticket is made
heartbeat = 5           # how often hubs refresh the presence of their sockets
help_reload = 10        # how often hubs look for added, edited or removed help articles

[retention]
days = 30               # closed chats and tickets are purged after this many days

[limits]
new_chats_per_minute = 60     # new visitor chats one client address may start per minute (0 = no limit; loopback never limited)
send_queue_bytes = 2097152    # queued for one socket before a client that stopped reading is cut off (1013)
visitor_frames_per_second = 10  # inbound frames per visitor socket; past it `rate_limited`, then close 1008
visitor_frame_burst = 30
agent_frames_per_second = 30    # an agent writes in several chats at once
agent_frame_burst = 60
help_requests_per_minute = 120  # help searches and article events one client address may make per minute (0 = no limit)
help_query_chars = 1000       # a longer help search is refused with `too_long` (the widget sends the first 500)
help_article_bytes = 262144   # a larger article file is skipped (with a warning naming it)
"""

DEMO_OVERRIDES = {"hours": ALWAYS}


class ConfigError(Exception):
    """The configuration file is wrong; the message says where and why."""

    def __init__(self, source: str, key: str, problem: str):
        super().__init__(f"{source}: {key}: {problem}")
        self.source, self.key, self.problem = source, key, problem


@dataclass(frozen=True)
class Timing:
    agent_grace: float = 30.0
    visitor_grace: float = 60.0
    offline_idle: float = 600.0
    wait_choice_timeout: float = 60.0
    heartbeat: float = 5.0
    help_reload: float = 10.0


@dataclass(frozen=True)
class Limits:
    """Abuse and overload guards. The address limit counts per hashed client address (the
    X-Forwarded-For of a trusted proxy); loopback is exempt; 0 turns it off."""

    new_chats_per_minute: int = 60
    send_queue_bytes: int = 2 * 1024 * 1024
    visitor_frames_per_second: int = 10
    visitor_frame_burst: int = 30
    agent_frames_per_second: int = 30
    agent_frame_burst: int = 60
    help_requests_per_minute: int = 120
    help_query_chars: int = 1000
    help_article_bytes: int = 262144


@dataclass(frozen=True)
class DeskConfig:
    plans: dict[str, Plan]
    schedules: dict[str, Schedule]
    emergency_head_start: float = 3600.0
    emergency_guard_ttl: float = 3600.0
    timing: Timing = field(default_factory=Timing)
    retention_days: float = 30.0
    limits: Limits = field(default_factory=Limits)

    @property
    def lowest_plan(self) -> Plan:
        return next(iter(self.plans.values()))

    def plan(self, name: str | None) -> Plan:
        return self.plans.get(name or "", self.lowest_plan)


SECTIONS = ("plans", "schedules", "emergency", "timing", "retention", "limits")
PLAN_KEYS = ("head_start", "max_wait", "hours", "live_chat")
SCHEDULE_KEYS = ("tz", "days", "opens", "closes")
EMERGENCY_KEYS = ("head_start", "guard_ttl")
RETENTION_KEYS = ("days",)


def _number(section: dict[str, Any], key: str, where: str, source: str, default: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(source, f"{where}.{key}", f"must be a number of seconds >= 0, got {value!r}")
    return float(value)


def _limits(raw: dict[str, Any], source: str) -> Limits:
    _known(raw, tuple(Limits.__dataclass_fields__), "limits", source)
    values = {}
    for key in Limits.__dataclass_fields__:
        value = raw.get(key, getattr(Limits(), key))
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(source, f"limits.{key}", f"must be a whole number >= 0, got {value!r}")
        values[key] = value
    for key in ("visitor_frames_per_second", "visitor_frame_burst", "agent_frames_per_second", "agent_frame_burst"):
        if values[key] < 1:
            raise ConfigError(source, f"limits.{key}", "must be at least 1 (a socket must be able to say hello)")
    if values["send_queue_bytes"] < 65536:
        raise ConfigError(source, "limits.send_queue_bytes", "must be at least 65536 (one full-size frame)")
    for key, least in (("help_query_chars", 100), ("help_article_bytes", 1024)):
        if values[key] < least:
            raise ConfigError(source, f"limits.{key}", f"must be at least {least}")
    return Limits(**values)


def _known(table: dict[str, Any], allowed: tuple[str, ...], where: str, source: str) -> None:
    """A misspelt setting is an error, not a silently ignored default."""
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(source, f"{where}.{unknown[0]}", f"unknown setting (known: {', '.join(allowed)})")


def _clock(value: Any, key: str, source: str) -> time:
    """"09:00" (a string) or 09:00:00 (a TOML local time)."""
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    try:
        hours, minutes = str(value).split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ConfigError(source, key, f"must be a time like \"09:00\", got {value!r}") from None


def _schedules(raw: dict[str, Any], source: str) -> dict[str, Schedule]:
    result = {}
    for name, table in raw.items():
        where = f"schedules.{name}"
        if not isinstance(table, dict):
            raise ConfigError(source, where, "must be a table")
        _known(table, SCHEDULE_KEYS, where, source)
        try:
            tz = ZoneInfo(str(table.get("tz", "UTC")))
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ConfigError(source, f"{where}.tz", f"unknown time zone {table.get('tz')!r}") from None
        days = table.get("days", list(DAY_NAMES[:5]))
        if not isinstance(days, list) or any(d not in DAY_NAMES for d in days):
            raise ConfigError(source, f"{where}.days", f"must be a list of {', '.join(DAY_NAMES)}")
        opens = _clock(table.get("opens", "09:00"), f"{where}.opens", source)
        closes = _clock(table.get("closes", "18:00"), f"{where}.closes", source)
        if closes <= opens:
            raise ConfigError(source, f"{where}.closes", "must be later than opens")
        result[name] = Schedule(name, tz, frozenset(DAY_NAMES.index(d) for d in days), opens, closes)
    return result


def _plans(raw: dict[str, Any], schedules: dict[str, Schedule], source: str) -> dict[str, Plan]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(source, "plans", "at least one [plans.NAME] table is needed")
    plans = {}
    for rank, (name, table) in enumerate(raw.items()):
        where = f"plans.{name}"
        if not isinstance(table, dict):
            raise ConfigError(source, where, "must be a table")
        _known(table, PLAN_KEYS, where, source)
        hours = table.get("hours", ALWAYS)
        if not isinstance(hours, str) or (hours != ALWAYS and hours not in schedules):
            raise ConfigError(source, f"{where}.hours", f"must be \"24/7\" or one of the schedules {sorted(schedules)}, got {hours!r}")
        live_chat = table.get("live_chat", True)
        if not isinstance(live_chat, bool):
            raise ConfigError(source, f"{where}.live_chat", f"must be true or false, got {live_chat!r}")
        plans[name] = Plan(
            name=name,
            rank=rank,
            head_start=_number(table, "head_start", where, source, 0),
            max_wait=_number(table, "max_wait", where, source, 600),
            hours=hours,
            live_chat=live_chat,
        )
    return plans


def parse_config(text: str, source: str = "<built-in>") -> DeskConfig:
    """Build the desk policy from TOML text; sections left out take the built-in defaults."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "(syntax)", str(exc)) from None
    defaults = tomllib.loads(DEFAULT_TOML)
    for section in SECTIONS:
        if section in raw and not isinstance(raw[section], dict):
            raise ConfigError(source, section, "must be a table")
    unknown = set(raw) - set(SECTIONS)
    if unknown:
        raise ConfigError(source, sorted(unknown)[0], f"unknown section (known: {', '.join(SECTIONS)})")
    schedules = _schedules({**defaults["schedules"], **raw.get("schedules", {})}, source)
    plans = _plans(raw.get("plans", defaults["plans"]), schedules, source)
    emergency = raw.get("emergency", {})
    _known(emergency, EMERGENCY_KEYS, "emergency", source)
    timing = raw.get("timing", {})
    known_timing = tuple(Timing.__dataclass_fields__)
    _known(timing, known_timing, "timing", source)
    retention = raw.get("retention", {})
    _known(retention, RETENTION_KEYS, "retention", source)
    if "heartbeat" in timing and _number(timing, "heartbeat", "timing", source, 5) == 0:
        raise ConfigError(source, "timing.heartbeat", "must be more than 0 seconds")
    if "help_reload" in timing and _number(timing, "help_reload", "timing", source, 10) == 0:
        raise ConfigError(source, "timing.help_reload", "must be more than 0 seconds")
    return DeskConfig(
        plans=plans,
        schedules=schedules,
        emergency_head_start=_number(emergency, "head_start", "emergency", source, 3600),
        emergency_guard_ttl=_number(emergency, "guard_ttl", "emergency", source, 3600),
        timing=Timing(**{k: _number(timing, k, "timing", source, getattr(Timing(), k)) for k in known_timing}),
        retention_days=_number(retention, "days", "retention", source, 30),
        limits=_limits(raw.get("limits", {}), source),
    )


def load_config(path: Path | None, demo: bool = False) -> DeskConfig:
    """Read LIVECHAT_CONFIG (or the built-in defaults). The demo opens every plan 24/7 so
    that a new user can try the desk at any hour."""
    if path is None:
        config = parse_config(DEFAULT_TOML)
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(str(path), "(file)", exc.strerror or str(exc)) from None
        config = parse_config(text, str(path))
    if demo:
        config = replace(config, plans={n: replace(p, **DEMO_OVERRIDES) for n, p in config.plans.items()})
    return config
