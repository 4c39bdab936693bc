"""Email tickets: a chat nobody could answer live becomes a ticket with a reference, and the
visitor and the support inbox are mailed.

One ticket per chat, whatever races: the chat's ticket pointer (keys.chat_ticket), the ticket
hash, its indexes and its two outbox mails are written in ONE optimistic transaction
(WATCH the pointer and the candidate ticket key, then MULTI/EXEC). A second caller, even in
another process at the same instant, either sees the pointer or has its EXEC aborted and then
sees it, and returns the same reference. A crash can never leave a ticket without its mails,
nor a pointer without its ticket.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import msgpack
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from chat import keys, windows
from chat.store import publish as bus_publish
from chat.chatlog import read_log
from chat.chats import load_chat
from chat.runtime import Runtime
from transcripts import outbox
from transcripts.contact import customer_hash, email_hash, is_mailable, normalize_email
from transcripts.customer_link import page_link, promise
from transcripts.mailer import OutgoingMail, mail_ids, ticket_mails
from transcripts.refs import new_ref, normalize_ref
from transcripts.reply_address import address_for
from transcripts.targets import STATUSES, initial_fields

TRIGGERS = ("offline", "max_wait", "visitor_left", "unresolved")
EMAIL = "email"  # the trigger (and channel) of a ticket opened by a mail to the support address
# Fields of the ticket hash that are not plain strings.
_FLAGS = ("verified", "emergency")
_TIMES = ("created_at", "updated_at")
_OPTIONAL_TIMES = ("due_at", "awaiting_since", "first_response_at", "pending_since", "solved_at")  # "" = none
_SUMMARY_FIELDS = ["ref", "status", "chat_id", "name", "email", "verified", "plan", "lang", "topic", "emergency",
                   "trigger", "agent_name", "created_at", "updated_at", "assignee", "due_at", "channel", "subject"]
MAX_ATTEMPTS = 20  # WATCH conflicts or reference collisions before giving up (never seen in practice)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _ticket_from_chat(ref: str, chat_id: str, chat: dict[str, str], transcript: list[dict], trigger: str, now: float) -> dict[str, Any]:
    return {
        "ref": ref,
        "status": "open",
        "chat_id": chat_id,
        "name": chat.get("name", ""),
        "email": chat.get("email", "").strip(),
        "verified": chat.get("verified") == "1",
        "sub": chat.get("sub", "") if chat.get("verified") == "1" else "",
        "plan": chat.get("plan", ""),
        "lang": chat.get("lang", ""),
        "topic": chat.get("topic", ""),
        "page": chat.get("page", ""),
        "emergency": chat.get("emergency") == "1",
        "agent": chat.get("agent", ""),
        "agent_name": chat.get("agent_name", ""),
        "trigger": trigger,
        "transcript": transcript,
        "created_at": now,
        "updated_at": now,
    }


def ticket_fields(ticket: dict[str, Any]) -> dict[str, bytes | str]:
    """Ticket fields as the hash stores them (the transcript packed, flags "0"/"1", times repr)."""
    out: dict[str, bytes | str] = {}
    for key, value in ticket.items():
        if key == "thread":
            continue  # a list of its own (keys.ticket_thread)
        if key == "transcript":
            out[key] = msgpack.packb(value)
        elif key in _OPTIONAL_TIMES:
            out[key] = "" if value is None or value == "" else repr(float(value))
        elif key in _FLAGS:
            out[key] = "1" if value else "0"
        elif key in _TIMES:
            out[key] = repr(float(value))
        else:
            out[key] = _text(value)
    return out


def _from_hash(raw: dict[bytes, bytes]) -> dict[str, Any]:
    ticket: dict[str, Any] = {}
    for k, v in raw.items():
        key = k.decode()
        if key == "transcript":
            ticket[key] = msgpack.unpackb(v) if v else []
        elif key in _FLAGS:
            ticket[key] = v == b"1"
        elif key in _TIMES:
            ticket[key] = float(v or 0)
        elif key in _OPTIONAL_TIMES:
            ticket[key] = float(v) if v else None
        else:
            ticket[key] = v.decode("utf-8", "replace")
    ticket.setdefault("transcript", [])
    ticket.setdefault("channel", "chat")
    return ticket


CONFIRMATION_WINDOW = 86400  # seconds: [limits] confirmations_per_address_per_day counts per window


def customer_reply_to(rt: Runtime, ref: str) -> str | None:
    """The Reply-To of the customer's mails of a ticket: its signed reply address when
    LIVECHAT_REPLY_ADDRESS is set (None: the support address)."""
    template = rt.settings.reply_address
    return address_for(template, rt.secret, ref) if template and rt.secret else None


def _compose(ticket: dict[str, Any], rt: Runtime, confirm: bool) -> tuple[dict[str, bytes | str], list[OutgoingMail]]:
    """The ticket hash and its mails, ready to store (run in a thread). The confirmation
    links to the ticket's private page and says when to expect an answer."""
    mails = ticket_mails({**ticket, "reply_to": customer_reply_to(rt, ticket["ref"])}, rt.settings, rt.config.limits,
                         confirm=confirm, page_link=page_link(rt, ticket), promise=promise(rt.config, ticket))
    return ticket_fields(ticket), mails


async def _confirmation_allowed(rt: Runtime, email: str) -> bool:
    """Count one confirmation for this address and say whether it is within [limits]
    confirmations_per_address_per_day: whoever types an address into the widget chooses the
    recipient, so one address gets a bounded number of mails from the desk, whoever asks."""
    return await windows.within(rt.redis, keys.confirmations(email_hash(email)),
                                rt.config.limits.confirmations_per_address_per_day, CONFIRMATION_WINDOW)


async def open_ticket(rt: Runtime, chat_id: str, trigger: str) -> str:
    """Turn a chat into a ticket and queue its mails; return the reference. Idempotent per
    chat: any later (or concurrent) call returns the first call's reference and does nothing.
    Raises LookupError for an unknown chat, ValueError for an unknown trigger."""
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {', '.join(TRIGGERS)}")
    pointer = keys.chat_ticket(chat_id)
    existing = await rt.redis.get(pointer)
    if existing:
        return existing.decode()
    chat = await load_chat(rt.redis, chat_id)
    if chat is None:
        raise LookupError(f"no chat {chat_id!r}")
    transcript = await read_log(rt.redis, chat_id)
    email = chat.get("email", "").strip()
    confirm = is_mailable(email) and await _confirmation_allowed(rt, email)

    def build(ref: str, now: float) -> dict[str, Any]:
        return _ticket_from_chat(ref, chat_id, chat, transcript, trigger, now)

    def claim(pipe: Pipeline, ref: str) -> None:
        pipe.set(pointer, ref, nx=True)
        pipe.hset(keys.chat(chat_id), "ticket", ref)

    ref, _ = await _store_new(rt, pointer, build, claim, email, confirm)
    return ref


async def _store_new(rt: Runtime, guard: str, build: Callable[[str, float], dict[str, Any]],
                     claim: Callable[[Pipeline, str], None], email: str, confirm: bool) -> tuple[str, bool]:
    """Write a new ticket, its indexes and its mails in ONE optimistic transaction that also
    claims `guard` (the chat's ticket pointer, or an incoming mail's fingerprint): a second
    caller, even in another process at the same instant, either sees the guard or has its
    EXEC aborted and then sees it. Returns (ref, made); made is False when the guard already
    named a ticket (then ref is that one)."""
    async with rt.redis.pipeline(transaction=True) as pipe:
        for _ in range(MAX_ATTEMPTS):
            ref = new_ref()
            try:
                await pipe.watch(guard, keys.ticket(ref))
                existing = await pipe.get(guard)
                if existing:
                    await pipe.reset()
                    return existing.decode(), False
                if await pipe.exists(keys.ticket(ref)):
                    await pipe.reset()
                    continue  # reference already taken: draw another
                now = rt.clock()
                ticket = build(ref, now)
                ticket.update(initial_fields(rt.config, ticket, now))
                ticket["confirmation"] = "queued" if confirm else "limited" if is_mailable(email) else "none"
                # Templates, MIME and packing the transcript are CPU work that grows with the
                # chat: in a thread, so that every other socket of this hub is still served.
                stored, mails = await asyncio.to_thread(_compose, ticket, rt, confirm)
                pipe.multi()
                claim(pipe, ref)
                pipe.hset(keys.ticket(ref), mapping=stored)
                pipe.zadd(keys.TICKETS, {ref: now})
                pipe.zadd(keys.tickets_by_status("open"), {ref: now})
                pipe.zadd(keys.TICKETS_DUE, {ref: ticket["due_at"]})
                if ticket["email"]:
                    pipe.sadd(keys.tickets_by_email(email_hash(ticket["email"])), ref)
                if ticket.get("sub"):
                    pipe.sadd(keys.tickets_by_customer(customer_hash(ticket["sub"])), ref)
                for mail in mails:
                    outbox.queue_mail(pipe, mail, now)
                outbox.notify(pipe)
                bus_publish(pipe, keys.TICKETS_CHANNEL, msgpack.packb({"type": "ticket", "ref": ref}))
                await pipe.execute()
                return ref, True
            except WatchError:
                continue  # someone else wrote the guard (or took the reference): look again
    raise RuntimeError(f"could not store a ticket after {MAX_ATTEMPTS} attempts")


async def load_ticket(redis: Redis, ref: str) -> dict[str, Any] | None:
    """The ticket with its transcript (list of message dicts), or None. Accepts a reference
    typed in any case; anything that is not a reference is simply not found."""
    canonical = normalize_ref(ref)
    if canonical is None:
        return None
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.ticket(canonical))
        pipe.lrange(keys.ticket_thread(canonical), 0, -1)
        raw, thread = await pipe.execute()
    if not raw:
        return None
    ticket = _from_hash(raw)
    ticket["thread"] = [{"id": i, **msgpack.unpackb(entry)} for i, entry in enumerate(thread, start=1)]
    return ticket


ORDERS = ("due", "newest")
MAX_LISTED = 5000  # tickets one filtered listing looks through (the newest of its index)


async def _summaries(redis: Redis, refs: list[bytes]) -> list[dict[str, Any]]:
    if not refs:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for ref in refs:
            pipe.hmget(keys.ticket(ref.decode()), _SUMMARY_FIELDS)
        rows = await pipe.execute()
    found = []
    for values in rows:
        if values[0] is not None:  # else purged between the two reads
            ticket = _from_hash({f.encode(): v for f, v in zip(_SUMMARY_FIELDS, values) if v is not None})
            ticket.pop("transcript", None)
            found.append(ticket)
    return found


def _matches(ticket: dict[str, Any], assignee: str | None, plan: str | None, q: str | None) -> bool:
    if assignee is not None and ticket.get("assignee", "") != assignee:
        return False
    if plan is not None and ticket.get("plan") != plan:
        return False
    if q:
        needle = q.strip().lower()
        haystack = " ".join(str(ticket.get(f, "")) for f in ("ref", "email", "name", "subject")).lower()
        return needle in haystack
    return True


async def list_tickets(redis: Redis, page: int, per_page: int = 50, status: str | None = None, *,
                       assignee: str | None = None, plan: str | None = None, q: str | None = None,
                       order: str = "newest") -> dict[str, Any]:
    """One page of tickets (page counts from 1), optionally of one status, assignee ("" for
    nobody), plan, and matching `q` in reference, address, name or subject; newest first, or
    by `due`: open tickets soonest due first, then the others newest first.
    {"page", "per_page", "pages", "total", "status", "tickets": [summary...]}."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}")
    per_page = max(1, min(int(per_page), 200))
    page = max(1, int(page))
    index = keys.TICKETS if status is None else keys.tickets_by_status(status)
    start = (page - 1) * per_page
    if assignee is None and plan is None and not q and order == "newest":
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zcard(index)
            pipe.zrevrange(index, start, start + per_page - 1)
            total, refs = await pipe.execute()
        tickets = await _summaries(redis, refs)
    else:
        every = [t for t in await _summaries(redis, await redis.zrevrange(index, 0, MAX_LISTED - 1))
                 if _matches(t, assignee, plan, q)]
        if order == "due":
            every.sort(key=lambda t: (0, t["due_at"]) if t.get("status") == "open" and t.get("due_at") is not None
                       else (1, -t.get("created_at", 0)))
        total, tickets = len(every), every[start:start + per_page]
    return {
        "page": page,
        "per_page": per_page,
        "pages": max(1, -(-int(total) // per_page)),
        "total": int(total),
        "status": status,
        "tickets": tickets,
    }


async def delete_ticket(redis: Redis, ref: str) -> bool:
    """Remove a ticket, its indexes and its queued mails in one transaction (erasure,
    retention). True when this call deleted it (concurrent callers count it once)."""
    raw_email, raw_sub = await redis.hmget(keys.ticket(ref), ["email", "sub"])
    email = normalize_email(raw_email.decode("utf-8", "replace") if raw_email else "")
    sub = raw_sub.decode("utf-8", "replace") if raw_sub else ""
    queued = [m.decode() for m in await redis.zrange(keys.OUTBOX, 0, -1) if m.decode().startswith(f"{ref}.")]
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(keys.ticket(ref))
        pipe.delete(keys.ticket_thread(ref), keys.ticket_files(ref))
        pipe.zrem(keys.TICKETS, ref)
        for s in STATUSES:
            pipe.zrem(keys.tickets_by_status(s), ref)
        pipe.zrem(keys.TICKETS_DUE, ref)
        pipe.zrem(keys.TICKETS_PENDING, ref)
        if email:
            pipe.srem(keys.tickets_by_email(email_hash(email)), ref)
        if sub:
            pipe.srem(keys.tickets_by_customer(customer_hash(sub)), ref)
        ids = sorted(set(mail_ids(ref)) | set(queued))
        pipe.zrem(keys.OUTBOX, *ids)
        pipe.zrem(keys.OUTBOX_FAILED, *ids)
        for mail_id in ids:
            pipe.delete(keys.outbox_mail(mail_id))
        result = await pipe.execute()
    return bool(result[0])


# --- tickets from mail ------------------------------------------------------------------

async def open_mail_ticket(rt: Runtime, fingerprint: str, contact: dict[str, str], first: dict[str, Any],
                           ttl: int, files: dict[str, bytes] | None = None) -> tuple[str, bool]:
    """A new ticket from a mail that answers none (channel `email`): the mail is its first
    message, and the customer and the support inbox are mailed as for a chat ticket, all in
    one transaction with the mail's fingerprint. Returns (ref, made): made is False when this
    mail had already been stored (then ref is where)."""
    seen_key = keys.mail_in(fingerprint)
    seen = await rt.redis.get(seen_key)
    if seen:
        return seen.decode(), False
    email = contact.get("email", "")
    confirm = is_mailable(email) and await _confirmation_allowed(rt, email)

    def build(ref: str, now: float) -> dict[str, Any]:
        return {
            **_ticket_from_chat(ref, "", {"plan": next(iter(rt.config.plans), ""), "lang": "en", **contact},
                                [{"seq": 1, "from": "visitor", **first}], EMAIL, now),
            "channel": EMAIL,
            "subject": contact.get("subject", ""),
            **({"previous_ref": contact["previous_ref"]} if contact.get("previous_ref") else {}),
        }

    def claim(pipe: Pipeline, ref: str) -> None:
        pipe.set(seen_key, ref, ex=ttl)
        if files:
            pipe.hset(keys.ticket_files(ref), mapping=files)

    return await _store_new(rt, seen_key, build, claim, email, confirm)


async def earlier_tickets(redis: Redis, sub: str, email: str, limit: int = 10) -> dict[str, list[dict[str, Any]]]:
    """A verified customer's own earlier tickets (by their id), and apart from them the
    tickets anyone filed under the same address without being verified: an agent must never
    take the second for the first. Newest first, summaries only."""
    own = {r.decode() for r in await redis.smembers(keys.tickets_by_customer(customer_hash(sub)))} if sub else set()
    same_address = {r.decode() for r in await redis.smembers(keys.tickets_by_email(email_hash(email)))} if email else set()
    fields = ["ref", "created_at", "status", "trigger", "subject", "verified", "sub"]
    refs = sorted(own | same_address)
    rows = []
    if refs:
        async with redis.pipeline(transaction=False) as pipe:
            for ref in refs:
                pipe.hmget(keys.ticket(ref), fields)
            rows = await pipe.execute()
    verified, unverified = [], []
    for values in rows:
        if values[0] is None:
            continue
        ticket = _from_hash({f.encode(): v for f, v in zip(fields, values) if v is not None})
        ticket.pop("transcript", None)
        mine = ticket["ref"] in own and ticket.pop("sub", "") == sub
        ticket.pop("sub", None)
        (verified if mine else unverified if not ticket.get("verified") else []).append(ticket)
    for group in (verified, unverified):
        group.sort(key=lambda t: t.get("created_at") or 0, reverse=True)
    return {"verified": verified[:limit], "unverified": unverified[:limit]}


async def attachment(redis: Redis, ref: str, file_id: str) -> tuple[dict[str, Any], bytes] | None:
    """One file a customer mailed with a ticket: its description (name, type, size) and bytes."""
    ticket = await load_ticket(redis, ref)
    if ticket is None:
        return None
    for message in [*ticket.get("transcript", []), *ticket.get("thread", [])]:
        for meta in message.get("attachments", []):
            if meta.get("id") == file_id:
                data = await redis.hget(keys.ticket_files(ticket["ref"]), file_id)
                return (meta, data) if data is not None else None
    return None
