"""A ticket's life: who it waits for, when the next answer is due, and the answers themselves.

Statuses: `open` (waiting for us), `pending` (waiting for the customer), `solved`. A public
agent reply makes a ticket `pending` unless the agent picks otherwise; a customer's mail makes
it `open` again (reopening a solved one within `[tickets] reopen_days`); a ticket `pending`
for `[tickets] pending_days` is solved with a short mail.

Every open ticket has a `due_at`: when the next response is due under its plan's target
(`first_response` until an agent first answered, then `next_response`), counted in the
business hours of the plan's schedule (`respond_by`); an emergency counts
`[tickets] emergency_response` around the clock. `due_at` is recomputed on every event, and
the open tickets are indexed by it so the list and the supervisors see what is about to miss
its promise first.

Every change is one optimistic transaction over the ticket's slot (WATCH the hash, then
MULTI/EXEC with its thread entry, its outgoing mail and its follow-ups), so a reply can never
be recorded without its mail; the indexes, the outbox's queue and the reports, in other slots
of a cluster, follow right after (transcripts.tickets.finish; the repair sweep after a crash).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, Callable

import msgpack
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from chat import frames, keys, rollups
from chat.config import DeskConfig
from chat.runtime import Runtime
from transcripts import outbox, tickets
from transcripts.contact import is_mailable
from transcripts.customer_link import page_link, promise
from transcripts.mailer import OutgoingMail, agent_reply, conversation_message_id, solved_notice
from transcripts.masking import mask
from transcripts.targets import DUE_SOON, due_at
from transcripts.tickets import customer_reply_to, load_ticket, ticket_fields

MAX_REPLY_CHARS = 20_000


class TicketError(Exception):
    """A refused change: the message says why (shown to the agent as is)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _apply(pipe: Pipeline, ref: str, fields: dict[str, Any]) -> None:
    """Queue the hash update of one change (the indexes follow it: tickets.finish)."""
    pipe.hset(keys.ticket(ref), mapping=ticket_fields(fields))


Change = Callable[[dict[str, Any]], "dict[str, Any] | None"]
Extra = Callable[[Pipeline, dict[str, Any]], None]


async def _transition(rt: Runtime, ref: str, change: Change, extra: Extra | None = None) -> dict[str, Any]:
    """Read the ticket, let `change` decide the new fields (None: nothing to do), write them
    with `extra`'s commands in one transaction of the ticket's slot, then finish the change;
    retried when someone else changed it meanwhile."""
    after: list[dict[str, Any]] = []
    now = rt.clock()

    async def decide(ticket: dict[str, Any], _: Pipeline) -> Callable[[Pipeline], None] | None:
        after.clear()
        fields = change(ticket)
        if fields is None:
            return None
        merged = {**ticket, **fields}
        after.append(merged)

        def write(pipe: Pipeline) -> None:
            _apply(pipe, ref, fields)
            if fields.get("status") == frames.TICKET_SOLVED and ticket.get("status") != frames.TICKET_SOLVED:
                event = rollups.ticket_solved(rt, ref, ticket, float(fields.get("solved_at") or now))
                tickets.queue_follow_up(pipe, ref, {"rollup": event.packed(rt)})
            if extra is not None:
                extra(pipe, merged)
        return write

    ticket = await tickets.change_ticket(rt.redis, ref, decide, now)
    if ticket is None:
        raise TicketError(404, "no such ticket")
    return after[0] if after else ticket


def _customer_wrote(config: DeskConfig, ticket: dict[str, Any], now: float) -> dict[str, Any]:
    fields: dict[str, Any] = {"status": frames.TICKET_OPEN, "updated_at": now, "pending_since": None, "solved_at": None}
    if ticket.get("status") != frames.TICKET_OPEN or ticket.get("due_at") is None:
        fields["awaiting_since"] = now
        fields["due_at"] = due_at(config, ticket, now, bool(ticket.get("first_response_at")))
    return fields


async def add_customer_mail(rt: Runtime, ref: str, fingerprint: str, entry: dict[str, Any], ttl: int,
                            files: dict[str, bytes] | None = None) -> str:
    """Add a customer's mail to the thread, once per fingerprint, and (unless a machine sent
    it) put the ticket back on our side, in one transaction of the ticket's slot that also
    remembers the fingerprint (keys.ticket_mails_in); the global mark (keys.mail_in) follows,
    so a mail delivered again after a crash between the two is still stored once. Returns
    "stored", "duplicate:<ref>" (this mail was stored before, there) or "gone" (purged)."""
    seen_key = keys.mail_in(fingerprint)
    seen = await rt.redis.get(seen_key)
    if seen:
        return f"duplicate:{seen.decode()}"
    now = rt.clock()
    duplicate: list[bool] = []

    async def decide(ticket: dict[str, Any], pipe: Pipeline) -> Callable[[Pipeline], None] | None:
        duplicate.clear()
        if await rt.redis.hexists(keys.ticket_mails_in(ref), fingerprint):  # WATCHed: still true at EXEC
            duplicate.append(True)
            return None
        fields = {"updated_at": now} if entry.get("automatic") else _customer_wrote(rt.config, ticket, now)

        def write(pipe: Pipeline) -> None:
            _apply(pipe, ref, fields)
            pipe.hset(keys.ticket_mails_in(ref), fingerprint, repr(now))
            pipe.rpush(keys.ticket_thread(ref), msgpack.packb(entry))
            if files:
                pipe.hset(keys.ticket_files(ref), mapping=files)
        return write

    ticket = await tickets.change_ticket(rt.redis, ref, decide, now, watch=(keys.ticket_mails_in(ref),))
    if ticket is None:
        return "gone"
    await rt.redis.set(seen_key, ref, ex=ttl)
    return f"duplicate:{ref}" if duplicate else "stored"


async def add_customer_message(rt: Runtime, ref: str, text: str, kind: str,
                               files: list[tuple[dict[str, Any], bytes]] | None = None) -> dict[str, Any]:
    """A customer's message from the private page (`web_in`) or the widget (`widget_in`),
    with the files attached to it (`files`: description and bytes, already within the cap):
    into the thread, and the ticket back on our side (reopened if solved within
    `reopen_days`), as a mail does, in one transaction. Returns the thread entry; TicketError
    when empty, too long, gone, or solved too long ago to reopen (409)."""
    text = mask((text or "").replace("\r\n", "\n").strip())
    if not text and not files:
        raise TicketError(400, "text is empty")
    if len(text) > MAX_REPLY_CHARS:
        raise TicketError(413, f"text is longer than {MAX_REPLY_CHARS} characters")
    now = rt.clock()
    entry: dict[str, Any] = {"kind": kind, "from": "customer", "text": text, "ts": now}
    blobs = {}
    for meta, data in files or []:
        file_id = secrets.token_hex(8)
        entry.setdefault("attachments", []).append({"id": file_id, **meta})
        blobs[file_id] = data

    def extra(pipe: Pipeline, _: dict[str, Any]) -> None:
        pipe.rpush(keys.ticket_thread(ref), msgpack.packb(entry))
        if blobs:
            pipe.hset(keys.ticket_files(ref), mapping=blobs)

    def change(ticket: dict[str, Any]) -> dict[str, Any]:
        if too_late_to_reopen(rt.config, ticket, now):  # as for a mail: an old request is not reopened
            raise TicketError(409, f"this request was solved more than {rt.config.tickets.reopen_days:g} days ago: "
                                   "to ask again, write to us by mail or start a chat, and a new request opens")
        return _customer_wrote(rt.config, ticket, now)

    await _transition(rt, ref, change, extra)
    return entry


async def revoke_link(rt: Runtime, ref: str) -> dict[str, Any]:
    """Every private link of this ticket stops working (its link version moves on); the
    customer gets a new one with the next mail, or by asking from the widget."""
    now = rt.clock()
    return await _transition(rt, ref, lambda t: {"link_version": int(t.get("link_version") or 0) + 1, "updated_at": now})


def too_late_to_reopen(config: DeskConfig, ticket: dict[str, Any], now: float) -> bool:
    """A reply this long after the ticket was solved starts a new ticket (linked to it)."""
    solved_at = ticket.get("solved_at")
    return (ticket.get("status") == frames.TICKET_SOLVED and solved_at is not None
            and now - float(solved_at) > config.tickets.reopen_days * 86400)


def _status_fields(config: DeskConfig, ticket: dict[str, Any], status: str, now: float) -> dict[str, Any]:
    if status == ticket.get("status"):
        return {}
    if status == frames.TICKET_OPEN:
        return _customer_wrote(config, ticket, now)
    if status == frames.TICKET_PENDING:
        return {"status": frames.TICKET_PENDING, "pending_since": now, "due_at": None, "solved_at": None, "updated_at": now}
    return {"status": frames.TICKET_SOLVED, "solved_at": now, "due_at": None, "pending_since": None, "updated_at": now}


async def reply(rt: Runtime, ref: str, author: dict[str, str], text: str, internal: bool,
                status: str | None = None) -> dict[str, Any]:
    """An agent's answer (mailed to the customer, threaded) or internal note (never mailed,
    never shown to the customer). Returns the thread entry."""
    text = mask((text or "").strip())
    if not text:
        raise TicketError(400, "text is empty")
    if len(text) > MAX_REPLY_CHARS:
        raise TicketError(413, f"text is longer than {MAX_REPLY_CHARS} characters")
    if status is not None and status not in frames.TICKET_STATUSES:
        raise TicketError(400, f"status must be one of {', '.join(frames.TICKET_STATUSES)}")
    current = await load_ticket(rt.redis, ref)
    if current is None:
        raise TicketError(404, "no such ticket")
    now = rt.clock()
    entry: dict[str, Any] = {"kind": frames.THREAD_NOTE if internal else frames.THREAD_MAIL_OUT, "from": author["username"],
                             "name": author.get("name") or author["username"], "text": text, "ts": now}
    mail: OutgoingMail | None = None
    if not internal:
        if not is_mailable(current.get("email")):
            raise TicketError(409, "this ticket has no address to mail; add an internal note instead")
        token = secrets.token_hex(6)
        mail = await asyncio.to_thread(agent_reply, {**current, "reply_to": customer_reply_to(rt, ref)}, entry, token,
                                       rt.settings, page_link(rt, current), promise(rt.config, current, answered=True))
        entry["message_id"] = conversation_message_id(ref, "reply", token, rt.settings)
        entry["mail_id"] = mail.mail_id

    answered: list[dict[str, Any]] = []  # the ticket as this answer found it, when it was waiting for us

    def change(ticket: dict[str, Any]) -> dict[str, Any]:
        answered.clear()
        if internal:
            return {"updated_at": now} if status is None else {**_status_fields(rt.config, ticket, status, now)}
        if ticket.get("status") == frames.TICKET_OPEN:
            answered.append(ticket)
        fields = {"updated_at": now}
        if not ticket.get("first_response_at"):
            fields["first_response_at"] = now
        target = status or frames.TICKET_PENDING
        fields.update(_status_fields(rt.config, ticket, target, now))
        if target == frames.TICKET_OPEN:  # the agent answered but keeps the ticket on our side: the next answer is due
            fields.update(awaiting_since=now, due_at=due_at(rt.config, ticket, now, True))
        return fields

    def extra(pipe: Pipeline, _: dict[str, Any]) -> None:
        pipe.rpush(keys.ticket_thread(ref), msgpack.packb(entry))
        if mail is not None:
            outbox.queue_mail(pipe, mail, now)
        if answered:  # counted in the reports with the reply itself, once
            event = rollups.ticket_response(rt, ref, token, answered[0], author["username"], now)
            tickets.queue_follow_up(pipe, ref, {"rollup": event.packed(rt)})

    await _transition(rt, ref, change, extra)
    return entry


async def update(rt: Runtime, ref: str, status: str | None = None, assignee: str | None = None) -> dict[str, Any]:
    """Set a ticket's status and/or assignee ("" for nobody)."""
    if status is not None and status not in frames.TICKET_STATUSES:
        raise TicketError(400, f"status must be one of {', '.join(frames.TICKET_STATUSES)}")
    if assignee is not None and assignee and not await rt.redis.sismember(keys.ACCOUNTS, assignee):
        raise TicketError(400, f"no agent {assignee!r}")
    now = rt.clock()

    def change(ticket: dict[str, Any]) -> dict[str, Any] | None:
        fields: dict[str, Any] = {}
        if status is not None:
            fields.update(_status_fields(rt.config, ticket, status, now))
        if assignee is not None and assignee != ticket.get("assignee", ""):
            fields.update(assignee=assignee, updated_at=now)
        return fields or None

    return await _transition(rt, ref, change)


async def solve_stale_pending(rt: Runtime) -> list[str]:
    """Tickets that waited for the customer past `pending_days` are solved, each with a short
    mail saying so (its id is fixed per waiting period, so a retry never mails twice)."""
    now = rt.clock()
    cutoff = now - rt.config.tickets.pending_days * 86400
    stale = await rt.redis.zrangebyscore(keys.TICKETS_PENDING, "-inf", cutoff, start=0, num=100)
    solved = []
    for raw in stale:
        ref = raw.decode()
        ticket = await load_ticket(rt.redis, ref)
        if ticket is None:
            await rt.redis.zrem(keys.TICKETS_PENDING, ref)
            continue
        since = ticket.get("pending_since")
        mail = None
        if is_mailable(ticket.get("email")) and since is not None:
            mail = await asyncio.to_thread(solved_notice, {**ticket, "reply_to": customer_reply_to(rt, ref)},
                                           f"{float(since):.0f}", rt.config.tickets.reopen_days, rt.settings,
                                           page_link(rt, ticket), promise(rt.config, ticket, answered=True))

        def change(t: dict[str, Any]) -> dict[str, Any] | None:
            if t.get("status") != frames.TICKET_PENDING or t.get("pending_since") is None or float(t["pending_since"]) > cutoff:
                return None
            return _status_fields(rt.config, t, frames.TICKET_SOLVED, now)

        def extra(pipe: Pipeline, _: dict[str, Any]) -> None:
            if mail is not None:
                outbox.queue_mail(pipe, mail, now)

        after = await _transition(rt, ref, change, extra)
        if after.get("status") == frames.TICKET_SOLVED:
            solved.append(ref)
    return solved


def messages(ticket: dict[str, Any]) -> list[dict[str, Any]]:
    """The whole conversation in order: the chat transcript (or the first mail), then every
    mail in and out and every note."""
    first_kind = frames.THREAD_MAIL_IN if ticket.get("channel") == frames.CHANNEL_EMAIL else frames.THREAD_CHAT

    def files(entry: dict[str, Any]) -> list[dict[str, Any]]:  # each with the agents' download link
        return [{**a, "url": f"/api/tickets/{ticket['ref']}/attachments/{a['id']}"} for a in entry.get("attachments", [])]

    out = [{"id": f"t{m.get('seq', i)}", "kind": m.get("kind", first_kind), "from": m.get("from", ""),
            "text": m.get("text", ""), "ts": m.get("ts", 0), "attachments": files(m),
            **({"dropped": m["dropped"]} if m.get("dropped") else {}),
            **({"name": m["name"]} if m.get("name") else {}),
            **({"original": m["original"]} if "original" in m else {})}
           for i, m in enumerate(ticket.get("transcript", []), 1)]
    for entry in ticket.get("thread", []):
        out.append({"id": str(entry["id"]), "kind": entry.get("kind", frames.THREAD_MAIL_IN), "from": entry.get("from", ""),
                    "name": entry.get("name", ""), "text": entry.get("text", ""), "ts": entry.get("ts", 0),
                    **({"original": entry["original"]} if "original" in entry else {}),
                    **({"automatic": True} if entry.get("automatic") else {}),
                    **({"dropped": entry["dropped"]} if entry.get("dropped") else {}),
                    "attachments": files(entry)})
    return out


async def due_overview(redis: Redis, now: float, limit: int = 10) -> dict[str, Any]:
    """Open tickets, those due within the hour, those past due, and the `limit` soonest due
    (no personal data: reference, plan, due time): what supervisors watch live."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(keys.TICKETS_DUE)
        pipe.zcount(keys.TICKETS_DUE, "-inf", f"({now}")
        pipe.zcount(keys.TICKETS_DUE, now, now + DUE_SOON)
        pipe.zrange(keys.TICKETS_DUE, 0, limit - 1, withscores=True)
        total, late, soon, first = await pipe.execute()
    soonest = []
    if first:
        async with redis.pipeline(transaction=False) as pipe:
            for ref, _ in first:
                pipe.hmget(keys.ticket(ref.decode()), ["plan", "emergency", "assignee"])
            rows = await pipe.execute()
        for (ref, due), (plan, emergency, assignee) in zip(first, rows):
            soonest.append({"ref": ref.decode(), "due_at": due, "breached": due < now,
                            "plan": (plan or b"").decode(), "emergency": emergency == b"1",
                            "assignee": (assignee or b"").decode()})
    return {"open": int(total), "breached": int(late), "due_soon": int(soon), "soonest": soonest}
