"""Plans and support hours: who is served first, how long they wait, and when.

The plan rules live here and nowhere else; chat/config.py reads them from TOML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ALWAYS = "24/7"
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Schedule:
    """Weekly opening hours in one time zone, e.g. weekdays 09:00-18:00 Europe/Brussels."""

    name: str
    tz: ZoneInfo
    days: frozenset[int]  # 0 = Monday
    opens: time
    closes: time
    holidays: frozenset[date] = field(default_factory=frozenset)  # closed all day

    def is_open(self, at: float) -> bool:
        local = datetime.fromtimestamp(at, self.tz)
        return (local.weekday() in self.days and local.date() not in self.holidays
                and self.opens <= local.time() < self.closes)

    def add_business_time(self, start: float, seconds: float) -> float:
        """The moment `seconds` of opening hours after `start`: a response target counted in
        the hours the desk works (a Friday-evening ticket with 8 hours is due on Monday)."""
        remaining = max(0.0, seconds)
        day = datetime.fromtimestamp(start, self.tz).date()
        for _ in range(3660):  # ten years of closed days is a configuration, not a schedule
            if day.weekday() in self.days and day not in self.holidays:
                opens = datetime.combine(day, self.opens, self.tz).timestamp()
                closes = datetime.combine(day, self.closes, self.tz).timestamp()
                begin = max(start, opens)
                if begin < closes:
                    if remaining <= closes - begin:
                        return begin + remaining
                    remaining -= closes - begin
            day += timedelta(days=1)
        return start + seconds


@dataclass(frozen=True)
class Plan:
    """What a plan buys: a head start in the queue, patience before a ticket, and hours."""

    name: str
    rank: int  # 0 = lowest
    head_start: float
    max_wait: float
    hours: str  # ALWAYS or a schedule name
    live_chat: bool = True
    first_response: float = 48 * 3600   # ticket response targets, in the business time of `hours`
    next_response: float = 48 * 3600


def virtual_arrival(arrived_at: float, plan: Plan, emergency_head_start: float | None = None) -> float:
    """The queue score: earlier is served first. A paying plan (or an emergency) moves a chat
    ahead by a bounded number of seconds, so nobody waits forever behind newcomers."""
    return arrived_at - plan.head_start - (emergency_head_start or 0.0)


def is_open(plan: Plan, schedules: dict[str, Schedule], at: float) -> bool:
    if not plan.live_chat:
        return False
    if plan.hours == ALWAYS:
        return True
    return schedules[plan.hours].is_open(at)


def respond_by(plan: Plan, schedules: dict[str, Schedule], since: float, target: float) -> float:
    """When a response is due: `target` seconds of the plan's hours after `since` (every
    hour counts for a 24/7 plan)."""
    if plan.hours == ALWAYS:
        return since + target
    return schedules[plan.hours].add_business_time(since, target)

