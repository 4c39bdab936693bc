"""The desk's policy file (LIVECHAT_CONFIG, TOML): plans, schedules, emergencies and timers.

A broken file stops the server with a ConfigError naming the file, the key and the fault.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
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
first_response = "48h"  # tickets: first answer due within this much of the plan's hours
next_response = "48h"   # tickets: each later answer to a customer's reply

[plans.plus]
head_start = 120
max_wait = 900
hours = "office"
live_chat = true
first_response = "24h"
next_response = "24h"

[plans.professional]
head_start = 300
max_wait = 1200
hours = "extended"
live_chat = true
first_response = "8h"
next_response = "8h"

[plans.visionary]
head_start = 900
max_wait = 1800
hours = "24/7"
live_chat = true
first_response = "2h"
next_response = "2h"

[schedules.office]
tz = "Europe/Brussels"
days = ["mon", "tue", "wed", "thu", "fri"]
opens = "09:00"
closes = "18:00"
holidays = []           # closed all day: dates ("2026-12-25") and/or a country's public holidays ("BE")

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
hello_timeout = 10      # seconds a new visitor socket has to send its hello before it is closed (1008)
header_timeout = 10     # seconds a client has to send a whole HTTP request head before 408 and close (0 = none)
ping_interval = 20      # seconds between the hub's WebSocket pings on each socket (0 = none)
ping_timeout = 20       # seconds a socket may take to answer a ping before it is closed (1011)
silent_chat_ttl = 300   # a chat closed before its visitor wrote anything is deleted this long after closing
help_reload = 10        # how often hubs look for added, edited or removed help articles
ticket_viewing_ttl = 30 # seconds an agent shows as viewing a ticket unless its dashboard says so again
repair_after = 60       # a ticket change left unfinished this long (a crashed process) is finished by the repair sweep

[retention]
days = 30               # closed chats and tickets are purged after this many days

[tickets]
reopen_days = 14              # a reply to a solved ticket within this many days reopens it; later, a new linked ticket
pending_days = 7              # a ticket waiting for the customer this long is solved (with a short mail)
emergency_response = "1h"     # response target of an emergency ticket, counted 24/7
plan_lookup_url = ""          # your site's endpoint that answers {"plan": …} for a mail's sender (signed POST); "" = none

[limits]
new_chats_per_minute = 60     # new visitor chats one client address may start per minute (0 = no limit; loopback never limited)
send_queue_bytes = 2097152    # queued for one socket before a client that stopped reading is cut off (1013)
visitor_frames_per_second = 10  # inbound frames per visitor socket; past it `rate_limited`, then close 1008
visitor_frame_burst = 30
agent_frames_per_second = 30    # an agent writes in several chats at once
agent_frame_burst = 60
visitor_messages_per_chat = 500   # messages a visitor may store in one chat; past it `limit_reached` (agents may still write)
visitor_bytes_per_chat = 524288   # bytes of messages a visitor may store in one chat, likewise
sockets_per_chat = 3          # visitor sockets on one chat per hub process; one more is refused (`limit_reached`, 1008)
sockets_per_address = 30      # visitor sockets from one client address per hub process, hello or not (loopback never limited)
max_waiting_chats = 50000     # waiting + offline chats with a visitor present; past it new visitors get `offline` `busy`
max_connections = 20000       # open connections per hub process; past it HTTP gets 503 and new sockets are refused
redis_memory_warning = 80     # percent of Redis maxmemory past which /metrics and the supervisor view warn (0 = never)
mail_transcript_messages = 100  # a ticket mail shows at most the last 100 messages ...
mail_transcript_bytes = 32768   # ... and at most 32 KiB of their text; the ticket keeps them all
confirmations_per_address_per_day = 10  # ticket confirmations one email address gets a day (0 = no limit)
identity_max_ttl = 86400      # seconds: an identity token whose exp is further ahead is refused (bad_identity)
login_window = 300            # seconds failed sign-ins are counted over
login_failures_per_user_address = 5   # failures for one username from one address, then that address gets 429
login_failures_per_address = 20       # failures from one address, any username (an office may share one address)
login_user_backoff_after = 10 # failures for one username from every address before its attempts are spaced out
login_user_backoff = 1        # seconds between attempts on that username then, doubling with each failure ...
login_user_backoff_max = 60   # ... up to this (a slowdown, never a lock-out of the real agent)
login_verifications_per_user = 2      # password checks (argon2) running at once for one username
login_verifications_per_address = 4   # and from one address; more get 429 at once
help_requests_per_minute = 120  # help searches and article events one client address may make per minute (0 = no limit)
help_query_chars = 1000       # a longer help search is refused with `too_long` (the widget sends the first 500)
help_article_bytes = 262144   # a larger article file is skipped (with a warning naming it)
ticket_requests_per_minute = 30   # private ticket page views and replies, and widget ticket calls, per client address (0 = no limit)
ticket_links_per_hour = 5     # "I have a reference" requests one client address may make per hour (0 = no limit)

[reports]
keep_days = 400               # hourly report rollups (counts and histograms, no personal data) are kept ~13 months
# tz = "Europe/Brussels"      # time zone of reports (days, weeks, busiest hours); default: the office schedule's, else UTC

[mail_in]
max_bytes = 26214400          # a mail over this size is refused (SMTP/LMTP 552; left unread in the IMAP box; mail-in exit 65)
max_recipients = 100          # RCPT commands accepted for one SMTP/LMTP mail; past it 452
attachment_bytes = 10485760   # attachments kept with the ticket per mail; past it the rest is noted as dropped
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
    hello_timeout: float = 10.0
    header_timeout: float = 10.0
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    silent_chat_ttl: float = 300.0
    help_reload: float = 10.0
    ticket_viewing_ttl: float = 30.0
    repair_after: float = 60.0


@dataclass(frozen=True)
class Limits:
    """Abuse and overload guards. Address limits count per hashed client address (the
    X-Forwarded-For of a trusted proxy); loopback is exempt; 0 turns a limit off. Socket
    counts are per hub process (no shared counter a crashed hub could leave behind); the
    proxy's limit_conn (docs/nginx.conf) bounds an address across hubs. The mail transcript
    caps bound what one ticket mail carries (its size and the work to build it); the
    confirmation cap keeps the desk from being used to mail one address over and over."""

    new_chats_per_minute: int = 60
    send_queue_bytes: int = 2 * 1024 * 1024
    visitor_frames_per_second: int = 10
    visitor_frame_burst: int = 30
    agent_frames_per_second: int = 30
    agent_frame_burst: int = 60
    visitor_messages_per_chat: int = 500
    visitor_bytes_per_chat: int = 512 * 1024
    sockets_per_chat: int = 3
    sockets_per_address: int = 30
    max_waiting_chats: int = 50000
    max_connections: int = 20000
    redis_memory_warning: int = 80
    mail_transcript_messages: int = 100
    mail_transcript_bytes: int = 32 * 1024
    confirmations_per_address_per_day: int = 10
    identity_max_ttl: int = 24 * 3600  # a leaked token stops working within a day, whatever exp its site gave it
    # Sign-in guards (agents/login_limit.py): failures per (username, address) and per address
    # in login_window seconds; a back-off per username from every address; concurrent checks.
    login_window: int = 300
    login_failures_per_user_address: int = 5
    login_failures_per_address: int = 20
    login_user_backoff_after: int = 10
    login_user_backoff: int = 1
    login_user_backoff_max: int = 60
    login_verifications_per_user: int = 2
    login_verifications_per_address: int = 4
    help_requests_per_minute: int = 120
    help_query_chars: int = 1000
    help_article_bytes: int = 262144
    # The customer's side of tickets (transcripts/customer.py): the private page and the
    # widget's ticket calls per address and minute; links mailed on request per address and hour.
    ticket_requests_per_minute: int = 30
    ticket_links_per_hour: int = 5


@dataclass(frozen=True)
class TicketPolicy:
    reopen_days: float = 14.0
    pending_days: float = 7.0
    emergency_response: float = 3600.0
    plan_lookup_url: str = ""  # asked for the plan of a new mail ticket's sender (transcripts/plan_lookup.py)


@dataclass(frozen=True)
class MailIn:
    """Guards of the mail listener and the IMAP poller (`livechat worker`): a mail is held
    in memory whole until it is stored, so its size is capped; the recipient cap bounds one
    SMTP/LMTP transaction (RFC 5321 asks servers to take at least 100); the attachments of one
    mail are kept (in Redis, with the ticket) up to a total size, the rest noted as dropped."""

    max_bytes: int = 25 * 1024 * 1024
    max_recipients: int = 100
    attachment_bytes: int = 10 * 1024 * 1024  # kept with the ticket per mail (the screenshots customers send)


@dataclass(frozen=True)
class Reports:
    """Reports over time (chat/rollups.py, chat/reports.py): the hourly rollups hold no
    personal data, so they may outlive `[retention] days`; ``tz`` ("" = the office
    schedule's time zone, else UTC) is where a report's days, weeks and hours begin."""

    keep_days: float = 400.0
    tz: str = ""


@dataclass(frozen=True)
class DeskConfig:
    plans: dict[str, Plan]
    schedules: dict[str, Schedule]
    emergency_head_start: float = 3600.0
    emergency_guard_ttl: float = 3600.0
    timing: Timing = field(default_factory=Timing)
    retention_days: float = 30.0
    limits: Limits = field(default_factory=Limits)
    tickets: TicketPolicy = field(default_factory=TicketPolicy)
    mail_in: MailIn = field(default_factory=MailIn)
    reports: Reports = field(default_factory=Reports)

    @property
    def report_tz(self) -> ZoneInfo:
        """The time zone reports are read in: `[reports] tz`, else the office schedule's, else UTC."""
        if self.reports.tz:
            return ZoneInfo(self.reports.tz)
        office = self.schedules.get("office")
        return office.tz if office is not None else ZoneInfo("UTC")

    @property
    def lowest_plan(self) -> Plan:
        return next(iter(self.plans.values()))

    def plan(self, name: str | None) -> Plan:
        return self.plans.get(name or "", self.lowest_plan)


SECTIONS = ("plans", "schedules", "emergency", "timing", "retention", "limits", "tickets", "mail_in", "reports")
PLAN_KEYS = ("head_start", "max_wait", "hours", "live_chat", "first_response", "next_response")
SCHEDULE_KEYS = ("tz", "days", "opens", "closes", "holidays")
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
COUNTRY = re.compile(r"[A-Z]{2}(?:-[A-Z0-9]{1,3})?")  # ISO 3166-1 alpha-2, with an optional region
EMERGENCY_KEYS = ("head_start", "guard_ttl")
RETENTION_KEYS = ("days",)


def _number(section: dict[str, Any], key: str, where: str, source: str, default: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(source, f"{where}.{key}", f"must be a number of seconds >= 0, got {value!r}")
    return float(value)


def _duration(section: dict[str, Any], key: str, where: str, source: str, default: float) -> float:
    """A number of seconds, or a string such as "90s", "30m", "8h", "2d"."""
    value = section.get(key, default)
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            number, unit = (float(text[:-1]), DURATION_UNITS[text[-1]]) if text[-1:] in DURATION_UNITS else (float(text), 1)
        except (ValueError, KeyError):
            raise ConfigError(source, f"{where}.{key}", f"must be a duration like \"8h\", \"30m\" or \"2d\", got {value!r}") from None
        value = number * unit
    return _number({key: value}, key, where, source, default)


def _holidays(value: Any, key: str, source: str) -> frozenset[date]:
    """Dates like "2026-12-25", and country codes like "BE" (or "ES-CT" for a region): every
    public holiday of that country, from the `holidays` package, this year and the next five."""
    if not isinstance(value, list):
        raise ConfigError(source, key, "must be a list of dates like \"2026-12-25\" or country codes like \"BE\"")
    days: set[date] = set()
    for item in value:
        if isinstance(item, str) and COUNTRY.fullmatch(item):
            days |= _country_holidays(item, key, source)
            continue
        try:
            days.add(item if isinstance(item, date) and not isinstance(item, datetime) else date.fromisoformat(str(item)))
        except ValueError:
            raise ConfigError(source, key, f"must be a list of dates like \"2026-12-25\" or country codes like "
                                           f"\"BE\", got {item!r}") from None
    return frozenset(days)


def _country_holidays(code: str, key: str, source: str) -> set[date]:
    import holidays  # read once, when the desk file is

    country, _, region = code.partition("-")
    this_year = date.today().year
    try:
        found = holidays.country_holidays(country, subdiv=region or None, years=range(this_year - 1, this_year + 6))
    except NotImplementedError:
        raise ConfigError(source, key, f"no public holidays known for {code!r} (a country code like \"BE\")") from None
    return set(found)


def _tickets(raw: dict[str, Any], source: str) -> TicketPolicy:
    _known(raw, tuple(TicketPolicy.__dataclass_fields__), "tickets", source)
    default = TicketPolicy()
    return TicketPolicy(
        reopen_days=_number(raw, "reopen_days", "tickets", source, default.reopen_days),
        pending_days=_number(raw, "pending_days", "tickets", source, default.pending_days),
        emergency_response=_duration(raw, "emergency_response", "tickets", source, default.emergency_response),
        plan_lookup_url=_http_url(raw.get("plan_lookup_url", default.plan_lookup_url), "tickets.plan_lookup_url", source),
    )


def _http_url(value: Any, key: str, source: str) -> str:
    if not isinstance(value, str) or (value and not value.startswith(("https://", "http://"))):
        raise ConfigError(source, key, f"must be an http(s) URL or \"\", got {value!r}")
    return value


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
    if values["redis_memory_warning"] > 100:
        raise ConfigError(source, "limits.redis_memory_warning", "must be a percentage from 0 to 100")
    for key in ("login_window", "login_failures_per_user_address", "login_failures_per_address", "login_user_backoff",
                "login_user_backoff_max", "login_verifications_per_user", "login_verifications_per_address"):
        if values[key] < 1:
            raise ConfigError(source, f"limits.{key}", "must be at least 1 (0 would refuse every sign-in)")
    if values["identity_max_ttl"] < 1:
        raise ConfigError(source, "limits.identity_max_ttl", "must be at least 1 (0 would refuse every identity token)")
    if values["send_queue_bytes"] < 65536:
        raise ConfigError(source, "limits.send_queue_bytes", "must be at least 65536 (one full-size frame)")
    for key, least in (("help_query_chars", 100), ("help_article_bytes", 1024)):
        if values[key] < least:
            raise ConfigError(source, f"limits.{key}", f"must be at least {least}")
    return Limits(**values)


def _mail_in(raw: dict[str, Any], source: str) -> MailIn:
    _known(raw, tuple(MailIn.__dataclass_fields__), "mail_in", source)
    values = {}
    for key in MailIn.__dataclass_fields__:
        value = raw.get(key, getattr(MailIn(), key))
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(source, f"mail_in.{key}", f"must be a whole number >= 1, got {value!r}")
        values[key] = value
    if values["max_bytes"] < 65536:
        raise ConfigError(source, "mail_in.max_bytes", "must be at least 65536 (an ordinary mail with its headers)")
    return MailIn(**values)


def _reports(raw: dict[str, Any], source: str) -> Reports:
    _known(raw, tuple(Reports.__dataclass_fields__), "reports", source)
    keep = _number(raw, "keep_days", "reports", source, Reports().keep_days)
    if keep < 1:
        raise ConfigError(source, "reports.keep_days", "must be at least 1 (a day's report must outlive the day)")
    tz = raw.get("tz", "")
    if not isinstance(tz, str):
        raise ConfigError(source, "reports.tz", f"must be a time zone name like \"Europe/Brussels\", got {tz!r}")
    if tz:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ConfigError(source, "reports.tz", f"unknown time zone {tz!r}") from None
    return Reports(keep_days=keep, tz=tz)


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
        holidays = _holidays(table.get("holidays", []), f"{where}.holidays", source)
        result[name] = Schedule(name, tz, frozenset(DAY_NAMES.index(d) for d in days), opens, closes, holidays)
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
            first_response=_duration(table, "first_response", where, source, 48 * 3600),
            next_response=_duration(table, "next_response", where, source,
                                    _duration(table, "first_response", where, source, 48 * 3600)),
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
    if "hello_timeout" in timing and _number(timing, "hello_timeout", "timing", source, 10) == 0:
        raise ConfigError(source, "timing.hello_timeout", "must be more than 0 seconds")
    if "ping_timeout" in timing and _number(timing, "ping_timeout", "timing", source, 20) == 0:
        raise ConfigError(source, "timing.ping_timeout", "must be more than 0 seconds")
    if "help_reload" in timing and _number(timing, "help_reload", "timing", source, 10) == 0:
        raise ConfigError(source, "timing.help_reload", "must be more than 0 seconds")
    if "ticket_viewing_ttl" in timing and _number(timing, "ticket_viewing_ttl", "timing", source, 30) < 1:
        raise ConfigError(source, "timing.ticket_viewing_ttl", "must be at least 1 second")
    if "repair_after" in timing and _number(timing, "repair_after", "timing", source, 60) <= 0:
        raise ConfigError(source, "timing.repair_after", "must be more than 0 seconds")
    return DeskConfig(
        plans=plans,
        schedules=schedules,
        emergency_head_start=_number(emergency, "head_start", "emergency", source, 3600),
        emergency_guard_ttl=_number(emergency, "guard_ttl", "emergency", source, 3600),
        timing=Timing(**{k: _number(timing, k, "timing", source, getattr(Timing(), k)) for k in known_timing}),
        retention_days=_number(retention, "days", "retention", source, 30),
        limits=_limits(raw.get("limits", {}), source),
        tickets=_tickets(raw.get("tickets", {}), source),
        mail_in=_mail_in(raw.get("mail_in", {}), source),
        reports=_reports(raw.get("reports", {}), source),
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
