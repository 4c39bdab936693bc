"""Response targets: when the next answer to a ticket is due (pure code).

A plan promises a first answer within `first_response` and every later one within
`next_response`, counted in the business hours of the plan's schedule (a Friday-evening free
ticket is due after the weekend; a 24/7 plan counts every hour). An emergency counts
`[tickets] emergency_response` around the clock.
"""

from __future__ import annotations

from typing import Any

from chat import frames
from chat.config import DeskConfig
from chat.plans import respond_by

DUE_SOON = 3600.0  # a ticket due within this is flagged "due soon" (amber)


def due_at(config: DeskConfig, ticket: dict[str, Any], since: float, answered_before: bool) -> float:
    """When the next response to a customer who wrote at `since` is due."""
    if ticket.get("emergency"):
        return since + config.tickets.emergency_response
    plan = config.plan(ticket.get("plan"))
    target = plan.next_response if answered_before else plan.first_response
    return respond_by(plan, config.schedules, since, target)


def initial_fields(config: DeskConfig, ticket: dict[str, Any], now: float) -> dict[str, Any]:
    """The life of a ticket just made: open, nobody assigned, the first response due."""
    return {"status": frames.TICKET_OPEN, "assignee": "", "awaiting_since": now, "first_response_at": None,
            "due_at": due_at(config, ticket, now, False), "pending_since": None, "solved_at": None}


def breached(ticket: dict[str, Any], now: float) -> bool:
    due = ticket.get("due_at")
    return ticket.get("status") == frames.TICKET_OPEN and due is not None and float(due) < now
