"""Plans and support hours: who is served first, how long they wait, and when.

The plan rules live here and nowhere else; chat/config.py reads them from TOML.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
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

    def is_open(self, at: float) -> bool:
        local = datetime.fromtimestamp(at, self.tz)
        return local.weekday() in self.days and self.opens <= local.time() < self.closes


@dataclass(frozen=True)
class Plan:
    """What a plan buys: a head start in the queue, patience before a ticket, and hours."""

    name: str
    rank: int  # 0 = lowest
    head_start: float
    max_wait: float
    hours: str  # ALWAYS or a schedule name
    live_chat: bool = True


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
