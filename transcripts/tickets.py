"""Email tickets: a chat nobody could answer live becomes a ticket with a reference, and the
visitor and the support inbox are mailed.

Where a ticket lives, so that it runs on a Redis Cluster as on one Redis: everything of one
ticket (its hash, thread, files, viewers, the fingerprints of its mails in, its outbox mails
and its follow-up list) carries the tag {t:REF} and changes in ONE single-slot optimistic
transaction (WATCH the hash, MULTI/EXEC). What is elsewhere is written after it, in steps
that are idempotent and ordered so that a crash between two of them loses nothing:

0. announce (slot {ti}): "a change making revision N of REF may be under way" (the ticket's
   `rev`), with the time, in keys.TICKETS_DIRTY;
1. the ticket's transaction: its fields, `rev` + 1, its thread, its mails, and its
   follow-ups (keys.ticket_todo: mails to put in the outbox's queue {o}, report events {r});
2. finish (:func:`finish`): do and remove the follow-ups, then set the indexes ({ti}: every
   ticket, by status, due, pending, by address, by customer) from the hash as it is now, in
   one script that never sets them back to an older revision (keys.TICKETS_INDEXED) and that
   clears the announcement once the hash has reached it; then tell the hubs.

A crash after step 0 or 1 leaves the announcement: the repair sweep (:func:`repair`, run by
chat/duties.py on every hub and worker) finishes whatever was announced more than
`[timing] repair_after` seconds ago. A new ticket also claims its guard (the chat's ticket
pointer, or the incoming mail's fingerprint) after step 1 and before step 2: the first claim
wins, a loser deletes its own ticket, which nobody had seen, and returns the winner's
reference; the sweep claims the guard of a creation that crashed before claiming it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

import msgpack
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from chat import frames, keys, rollups, windows
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
from transcripts.targets import initial_fields

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
        "status": frames.TICKET_OPEN,
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
    ticket.setdefault("channel", frames.CHANNEL_CHAT)
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
    ref, staged = await stage_chat_ticket(rt, chat_id, trigger)
    if staged:
        ref, _ = await settle_new_ticket(rt.redis, ref)
    return ref


async def stage_chat_ticket(rt: Runtime, chat_id: str, trigger: str) -> tuple[str, bool]:
    """The first steps of a chat's ticket (:func:`stage_new_ticket`): (ref, True), or the
    chat's ticket made before and False. :func:`settle_new_ticket` (or the repair sweep, after
    a crash) claims the chat's pointer and lists and mails it."""
    if trigger not in frames.CHAT_TRIGGERS:
        raise ValueError(f"trigger must be one of {', '.join(frames.CHAT_TRIGGERS)}")
    existing = await rt.redis.get(keys.chat_ticket(chat_id))
    if existing:
        return existing.decode(), False
    chat = await load_chat(rt.redis, chat_id)
    if chat is None:
        raise LookupError(f"no chat {chat_id!r}")
    transcript = await read_log(rt.redis, chat_id)
    email = chat.get("email", "").strip()
    confirm = is_mailable(email) and await _confirmation_allowed(rt, email)

    def build(ref: str, now: float) -> dict[str, Any]:
        return _ticket_from_chat(ref, chat_id, chat, transcript, trigger, now)

    return await stage_new_ticket(rt, build, email, confirm), True


# KEYS: announced hash, dirty zset ({ti}); ARGV: ref, revision about to be made, now
_ANNOUNCE = """
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > cur then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1])
return 1
"""

# KEYS: 1 indexed, 2 announced, 3 dirty, 4 gone mark, 5 every ticket, 6-8 by status (open,
# pending, solved), 9 due, 10 pending-since, 11 by address, 12 by customer (all {ti}).
# ARGV: 1 ref, 2 rev ("" when the ticket is gone), 3 created_at, 4 status, 5 due_at, 6
# pending_since, 7 "rev:address hash:customer hash" to remember, 8 gone mark's TTL.
_SYNC = """
local ref = ARGV[1]
if ARGV[2] == '' then
  for k = 5, 10 do redis.call('ZREM', KEYS[k], ref) end
  redis.call('SREM', KEYS[11], ref)
  redis.call('SREM', KEYS[12], ref)
  redis.call('HDEL', KEYS[1], ref)
  redis.call('HDEL', KEYS[2], ref)
  redis.call('ZREM', KEYS[3], ref)
  redis.call('SET', KEYS[4], '1', 'EX', ARGV[8])
  return 1
end
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
local rev = tonumber(ARGV[2])
local shown = redis.call('HGET', KEYS[1], ref)
local done = shown and tonumber(string.match(shown, '^[^:]*')) or -1
if rev > done then
  redis.call('ZADD', KEYS[5], ARGV[3], ref)
  local statuses = {open = 6, pending = 7, solved = 8}
  for name, k in pairs(statuses) do
    if name == ARGV[4] then redis.call('ZADD', KEYS[k], ARGV[3], ref) else redis.call('ZREM', KEYS[k], ref) end
  end
  if ARGV[4] == 'open' and ARGV[5] ~= '' then redis.call('ZADD', KEYS[9], ARGV[5], ref) else redis.call('ZREM', KEYS[9], ref) end
  if ARGV[4] == 'pending' and ARGV[6] ~= '' then redis.call('ZADD', KEYS[10], ARGV[6], ref) else redis.call('ZREM', KEYS[10], ref) end
  local owners = {}
  for part in string.gmatch(ARGV[7] .. ':', '([^:]*):') do owners[#owners + 1] = part end
  if owners[2] ~= '' then redis.call('SADD', KEYS[11], ref) end
  if owners[3] ~= '' then redis.call('SADD', KEYS[12], ref) end
  redis.call('HSET', KEYS[1], ref, ARGV[7])
end
local announced = tonumber(redis.call('HGET', KEYS[2], ref) or '0')
if announced <= rev then
  redis.call('HDEL', KEYS[2], ref)
  redis.call('ZREM', KEYS[3], ref)
end
return 1
"""

# KEYS: announced, dirty; ARGV: ref, the announcement found abandoned
_FORGET = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
return 0
"""

# KEYS: the guard (chat's ticket pointer, or a mail's fingerprint), [the chat hash]; ARGV: ref,
# TTL (0: none). The first reference claimed wins; returns the winner.
_CLAIM = """
local cur = redis.call('GET', KEYS[1])
if cur then return cur end
redis.call('SET', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if #KEYS > 1 and redis.call('EXISTS', KEYS[2]) == 1 then redis.call('HSET', KEYS[2], 'ticket', ARGV[1]) end
return ARGV[1]
"""

GONE_TTL = 7 * 86400  # seconds a deleted reference stays out of the indexes, whoever read it before
_INDEX_FIELDS = ["rev", "created_at", "status", "due_at", "pending_since", "email", "sub", "chat_id",
                 "mail_fingerprint", "fingerprint_ttl"]


async def announce(redis: Redis, ref: str, rev: int, now: float) -> None:
    """Step 0 of every change: revision `rev` of this ticket may be on its way, so that a
    crash before it is finished leaves a trace the repair sweep follows."""
    await redis.eval(_ANNOUNCE, 2, keys.TICKETS_ANNOUNCED, keys.TICKETS_DIRTY, ref, str(rev), repr(now))


def _index_keys(ref: str, address: str, customer: str) -> list[str]:
    return [keys.TICKETS_INDEXED, keys.TICKETS_ANNOUNCED, keys.TICKETS_DIRTY, keys.ticket_gone(ref), keys.TICKETS,
            *(keys.tickets_by_status(s) for s in frames.TICKET_STATUSES), keys.TICKETS_DUE, keys.TICKETS_PENDING,
            keys.tickets_by_email(address), keys.tickets_by_customer(customer)]


async def _follow_up(redis: Redis, packed: bytes) -> None:
    item = msgpack.unpackb(packed)
    if "mail" in item:
        await outbox.put_in_queue(redis, item["mail"], float(item["at"]))
    elif "rollup" in item:
        await rollups.record_packed(redis, item["rollup"])


async def finish(redis: Redis, ref: str, owners: tuple[str, str] | None = None) -> None:
    """Step 2 of every change (see the module docstring): the follow-ups its transaction left,
    then the indexes as the hash is now, then the hubs told. Idempotent, and safe to run by
    anyone at any time (the repair sweep does). `owners`: the address and customer hashes of a
    ticket just deleted, when the indexes never recorded them (a ticket older than `rev`)."""
    async with redis.pipeline(transaction=True) as pipe:  # one slot: the hash and its follow-ups agree
        pipe.hmget(keys.ticket(ref), _INDEX_FIELDS)
        pipe.lrange(keys.ticket_todo(ref), 0, -1)
        row, todo = await pipe.execute()
    for item in todo:
        await _follow_up(redis, item)
    if todo:
        async with redis.pipeline(transaction=False) as pipe:
            for item in todo:
                pipe.lrem(keys.ticket_todo(ref), 1, item)
            await pipe.execute()
    rev, created, status, due, pending, email, sub = (v.decode("utf-8", "replace") if v is not None else "" for v in row[:7])
    if not created:  # deleted (or a creation that never got as far as its hash)
        shown = await redis.hget(keys.TICKETS_INDEXED, ref)
        _, address, customer = ((shown or b"").decode() + "::").split(":")[:3]
        if owners and not address and not customer:
            address, customer = owners
        await redis.eval(_SYNC, 12, *_index_keys(ref, address, customer), ref, "", "", "", "", "", "", str(GONE_TTL))
    else:
        address = email_hash(email) if email.strip() else ""
        customer = customer_hash(sub) if sub else ""
        await redis.eval(_SYNC, 12, *_index_keys(ref, address, customer), ref, str(int(rev or 0)), created, status,
                         due, pending, f"{int(rev or 0)}:{address}:{customer}", str(GONE_TTL))
    await bus_publish(redis, keys.TICKETS_CHANNEL, msgpack.packb({"type": frames.EVENT_TICKET, "ref": ref}))


def queue_follow_up(pipe: Pipeline, ref: str, item: dict[str, Any]) -> None:
    """Add to a ticket's transaction something to do in another slot once it is committed
    ({"rollup": Event.packed(...)}; outbox.queue_mail adds its own)."""
    pipe.rpush(keys.ticket_todo(ref), msgpack.packb(item))


Decide = Callable[[dict[str, Any], Pipeline], Awaitable["Callable[[Pipeline], None] | None"]]


async def commit_change(redis: Redis, ref: str, decide: Decide, now: float,
                        watch: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """Steps 0 and 1 of a change: read the ticket under WATCH (with `watch`, more keys of its
    slot), let `decide` return the writes (None: nothing to do; it reads through `redis`, never
    the pipeline, which on a cluster queues every command after WATCH), announce, and commit them
    with `rev` + 1; retried when someone else changed the ticket meanwhile. Returns the ticket
    as it was read (None: no such ticket). The caller then runs :func:`finish`."""
    key = keys.ticket(ref)
    async with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(key, *watch)
                ticket = await load_ticket(redis, ref)  # read on any connection: WATCH still guards it
                if ticket is None:
                    await pipe.reset()
                    return None
                write = await decide(ticket, pipe)
                if write is None:
                    await pipe.reset()
                    return ticket
                await announce(redis, ref, int(ticket.get("rev") or 0) + 1, now)
                pipe.multi()
                pipe.hincrby(key, "rev", 1)
                write(pipe)
                await pipe.execute()
                return ticket
            except WatchError:
                continue


async def change_ticket(redis: Redis, ref: str, decide: Decide, now: float,
                        watch: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """One whole change of a ticket: :func:`commit_change`, then :func:`finish`."""
    ticket = await commit_change(redis, ref, decide, now, watch)
    if ticket is not None:
        await finish(redis, ref)
    return ticket


async def add_mails(redis: Redis, ref: str, mails: list[OutgoingMail], now: float) -> bool:
    """Queue mails of an existing ticket on their own (the private link asked for from the
    widget): a change of the ticket that stores them. False when the ticket is gone."""
    async def decide(_: dict[str, Any], __: Pipeline) -> Callable[[Pipeline], None]:
        def write(pipe: Pipeline) -> None:
            for mail in mails:
                outbox.queue_mail(pipe, mail, now)
        return write

    return await change_ticket(redis, ref, decide, now) is not None


async def stage_new_ticket(rt: Runtime, build: Callable[[str, float], dict[str, Any]], email: str, confirm: bool,
                           extra: Callable[[Pipeline, str, float], None] | None = None) -> str:
    """Steps 0 and 1 of a new ticket under a fresh reference: announced, then the hash, its
    mails and follow-ups (and `extra`'s writes, in its slot) in one transaction. Nothing of it
    is listed or mailed before :func:`settle_new_ticket` (or the repair sweep)."""
    for _ in range(MAX_ATTEMPTS):
        ref = new_ref()
        if await rt.redis.exists(keys.ticket(ref)) or await rt.redis.exists(keys.ticket_gone(ref)):
            continue  # reference already taken (or just deleted): draw another
        now = rt.clock()
        ticket = build(ref, now)
        ticket.update(initial_fields(rt.config, ticket, now))
        ticket["confirmation"] = "queued" if confirm else "limited" if is_mailable(email) else "none"
        # Templates, MIME and packing the transcript are CPU work that grows with the
        # chat: in a thread, so that every other socket of this hub is still served.
        stored, mails = await asyncio.to_thread(_compose, ticket, rt, confirm)
        await announce(rt.redis, ref, 1, now)
        async with rt.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(keys.ticket(ref))
                # Read on any connection (a cluster's transaction queues every command after
                # WATCH): the WATCH still guards the key until EXEC.
                if await rt.redis.exists(keys.ticket(ref)):
                    await pipe.reset()
                    continue
                pipe.multi()
                pipe.hset(keys.ticket(ref), mapping={**stored, "rev": "1"})
                if extra is not None:
                    extra(pipe, ref, now)
                for mail in mails:
                    outbox.queue_mail(pipe, mail, now)
                await pipe.execute()
                return ref
            except WatchError:
                continue  # the same reference drawn by someone else at this instant
    raise RuntimeError(f"could not store a ticket after {MAX_ATTEMPTS} attempts")


async def _claim_guard(redis: Redis, ref: str, chat_id: str, fingerprint: str, ttl: int) -> str:
    if chat_id:
        guard = [keys.chat_ticket(chat_id), keys.chat(chat_id)]
    else:
        guard = [keys.mail_in(fingerprint)]
    winner = await redis.eval(_CLAIM, len(guard), *guard, ref, str(max(0, ttl)))
    return winner.decode() if isinstance(winner, bytes) else str(winner)


async def settle_new_ticket(redis: Redis, ref: str) -> tuple[str, bool]:
    """Claim a staged ticket's guard (its chat's pointer, or its mail's fingerprint) and
    finish it; a ticket that lost the claim is deleted. Returns (winner's ref, made)."""
    chat_id, fingerprint, ttl = await redis.hmget(keys.ticket(ref), ["chat_id", "mail_fingerprint", "fingerprint_ttl"])
    chat_id = (chat_id or b"").decode()
    fingerprint = (fingerprint or b"").decode()
    if chat_id or fingerprint:
        winner = await _claim_guard(redis, ref, chat_id, fingerprint, int(ttl or 0))
        if winner != ref:
            await delete_ticket(redis, ref)
            return winner, False
    await finish(redis, ref)
    return ref, True


async def repair(redis: Redis, now: float, after: float, limit: int = 100) -> list[str]:
    """The repair sweep: finish every ticket change announced more than `after` seconds ago
    and not finished (its process crashed between two steps): a creation claims its guard,
    follow-ups are done (mails queued, report events counted), the indexes set from the hash.
    An announcement no transaction ever followed is forgotten. Returns the refs repaired."""
    repaired = []
    for raw in await redis.zrangebyscore(keys.TICKETS_DIRTY, "-inf", now - after, start=0, num=limit):
        ref = raw.decode()
        rev = await redis.hget(keys.ticket(ref), "rev")
        announced = await redis.hget(keys.TICKETS_ANNOUNCED, ref)
        if rev is not None and int(rev) == 1 and not await redis.hexists(keys.TICKETS_INDEXED, ref):
            await settle_new_ticket(redis, ref)  # a creation: its guard may be unclaimed
        else:
            await finish(redis, ref)
        if announced is not None and (rev is None or int(announced) > int(rev)):
            await redis.eval(_FORGET, 2, keys.TICKETS_ANNOUNCED, keys.TICKETS_DIRTY, ref, announced)
        repaired.append(ref)
    return repaired


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
    if status is not None and status not in frames.TICKET_STATUSES:
        raise ValueError(f"status must be one of {', '.join(frames.TICKET_STATUSES)}")
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
            every.sort(key=lambda t: (0, t["due_at"]) if t.get("status") == frames.TICKET_OPEN and t.get("due_at") is not None
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
    """Remove a ticket with everything in its slot (thread, files, its mails), then its index
    entries and its mails' places in the outbox's queues (erasure, retention). True when this
    call deleted it (concurrent callers count it once). Announced first: a crash after the
    ticket's own keys went leaves its index entries to the repair sweep."""
    raw_email, raw_sub, rev = await redis.hmget(keys.ticket(ref), ["email", "sub", "rev"])
    email = normalize_email(raw_email.decode("utf-8", "replace") if raw_email else "")
    sub = raw_sub.decode("utf-8", "replace") if raw_sub else ""
    ids = sorted(set(mail_ids(ref)) | {m.decode() for m in await redis.smembers(keys.ticket_mails(ref))})
    await announce(redis, ref, int(rev or 0) + 1, time.time())
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(keys.ticket(ref))
        pipe.delete(keys.ticket_thread(ref), keys.ticket_files(ref), keys.ticket_viewers(ref),
                    keys.ticket_mails_in(ref), keys.ticket_mails(ref), keys.ticket_todo(ref),
                    *(keys.outbox_mail(i) for i in ids))
        result = await pipe.execute()
    await finish(redis, ref, (email_hash(email) if email else "", customer_hash(sub) if sub else ""))
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zrem(keys.OUTBOX, *ids)
        pipe.zrem(keys.OUTBOX_FAILED, *ids)
        await pipe.execute()
    return bool(result[0])


# --- tickets from mail ------------------------------------------------------------------

async def open_mail_ticket(rt: Runtime, fingerprint: str, contact: dict[str, str], first: dict[str, Any],
                           ttl: int, files: dict[str, bytes] | None = None) -> tuple[str, bool]:
    """A new ticket from a mail that answers none (channel `email`): the mail is its first
    message, and the customer and the support inbox are mailed as for a chat ticket; the
    mail's fingerprint is its guard. Returns (ref, made): made is False when this mail had
    already been stored (then ref is where)."""
    seen = await rt.redis.get(keys.mail_in(fingerprint))
    if seen:
        return seen.decode(), False
    email = contact.get("email", "")
    confirm = is_mailable(email) and await _confirmation_allowed(rt, email)

    def build(ref: str, now: float) -> dict[str, Any]:
        return {
            **_ticket_from_chat(ref, "", {"plan": next(iter(rt.config.plans), ""), "lang": "en", **contact},
                                [{"seq": 1, "from": frames.FROM_VISITOR, **first}], frames.TRIGGER_EMAIL, now),
            "channel": frames.CHANNEL_EMAIL,
            "subject": contact.get("subject", ""),
            "mail_fingerprint": fingerprint,
            "fingerprint_ttl": str(int(ttl)),
            **({"previous_ref": contact["previous_ref"]} if contact.get("previous_ref") else {}),
        }

    def extra(pipe: Pipeline, ref: str, now: float) -> None:
        pipe.hset(keys.ticket_mails_in(ref), fingerprint, repr(now))
        if files:
            pipe.hset(keys.ticket_files(ref), mapping=files)

    ref = await stage_new_ticket(rt, build, email, confirm, extra)
    return await settle_new_ticket(rt.redis, ref)


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
