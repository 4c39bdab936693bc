"""Mail coming in: every customer reply lands in its ticket, and nowhere else.

One intake for every way a mail arrives (`livechat mail-in` from an MTA pipe today), and it is
idempotent: a mail is recognised by its Message-ID (or, without one, by its bytes), so an MTA
that delivers twice, or a retry after a timeout, stores it once.

Threading, in this order, and only ever into a ticket whose contact address is the sender's:

1. a reference in one of our own Message-IDs in `In-Reply-To` / `References` (a reply to a
   mail the desk sent);
2. the `[LC-XXXXXX]` tag in the subject.

Our Message-IDs are derived from the reference, so they prove no more than knowing it; a
stranger who quotes someone's reference (in a header or the subject) therefore opens a new
ticket of their own and never reads or writes into someone else's. Anything else sent by a
person opens a new ticket (channel `email`) with the usual confirmation. Mail sent by a
machine (auto-replies, lists, bulk: RFC 3834) and mail from our own addresses never opens a
ticket and is never answered; an auto-reply that threads is kept in the thread, marked.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass

from chat import frames, keys, rollups
from chat.runtime import Runtime
from chat.stats import record_ticket
from transcripts.contact import email_hash, normalize_email
from transcripts.inbound import Inbound, parse
from transcripts.mailer import envelope_address
from transcripts.plan_lookup import plan_of
from transcripts.reply_address import ticket_of
from transcripts.desk import add_customer_mail, too_late_to_reopen
from transcripts.tickets import load_ticket, open_mail_ticket

log = logging.getLogger("livechat.intake")

ORIGINAL_CHARS = 100_000  # of the whole text kept for "show original"


@dataclass(frozen=True)
class Taken:
    """What became of one mail: `stored` in ref's thread, `opened` ref, `duplicate` (stored
    before, in ref), or `ignored` (why, in `reason`)."""

    outcome: str
    ref: str = ""
    reason: str = ""


def _retention_seconds(rt: Runtime) -> int:
    return max(86_400, int(rt.config.retention_days * 86_400))


async def _thread_for(rt: Runtime, mail: Inbound, envelope: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(the ticket this mail continues, a solved ticket it answers too late to reopen): one
    named by our Message-ID or its subject tag when the sender is its contact, or by a genuine
    signed reply address whoever the sender."""
    signed = (ticket_of([*envelope, *mail.recipients], rt.settings.reply_address, rt.secret)
              if rt.settings.reply_address and rt.secret else None)
    candidates = [(ref, False) for ref in mail.answers]
    candidates += [(signed, True)] if signed else []
    candidates += [(mail.subject_ref, False)] if mail.subject_ref else []
    for ref, vouched in candidates:
        ticket = await load_ticket(rt.redis, ref)
        if ticket and (vouched or (mail.sender and normalize_email(ticket.get("email")) == mail.sender)):
            if too_late_to_reopen(rt.config, ticket, rt.clock()) and not mail.automatic:
                return None, ref
            return ref, None
    return None, None


async def _plan_of_sender(rt: Runtime, sender: str) -> str | None:
    """The plan of the last verified chat with this address, else what the site's plan
    lookup answers, else None (the lowest plan)."""
    known = await rt.redis.get(keys.plan_by_email(email_hash(sender)))
    if known and known.decode() in rt.config.plans:
        return known.decode()
    return await plan_of(rt.config.tickets.plan_lookup_url, rt.settings.site_secret, sender, rt.config.plans)


def _own_addresses(rt: Runtime) -> set[str]:
    return {normalize_email(envelope_address(a)) for a in (rt.settings.support_address, rt.settings.sender) if a}


def _files(mail: Inbound, cap: int) -> tuple[list[dict], list[dict], dict[str, bytes]]:
    """(kept, dropped, id -> bytes): the attachments kept with the ticket, in the mail's order,
    until their total reaches the cap; the others are named in the thread as dropped."""
    kept, dropped, blobs, total = [], [], {}, 0
    for attachment in mail.attachments:
        meta = {"name": attachment.name, "type": attachment.content_type, "size": len(attachment.data)}
        if total + len(attachment.data) > cap:
            dropped.append({**meta, "reason": f"over the {cap // (1024 * 1024) or 1} MB kept per mail"})
            continue
        total += len(attachment.data)
        file_id = secrets.token_hex(8)
        kept.append({"id": file_id, **meta})
        blobs[file_id] = attachment.data
    return kept, dropped, blobs


async def take(rt: Runtime, raw: bytes, envelope: tuple[str, ...] = ()) -> Taken:
    """Store one RFC 5322 message (`envelope`: the recipients the SMTP/LMTP client gave, when
    known). Raises redis errors when it cannot be stored, so that the way in (an MTA pipe, an
    SMTP answer) can ask the sender to try again later."""
    mail = await asyncio.to_thread(parse, raw)
    if mail.sender in _own_addresses(rt):
        log.info("mail from our own address ignored (a loop)")
        return Taken("ignored", reason="loop")
    now = rt.clock()
    kept, dropped, blobs = _files(mail, rt.config.mail_in.attachment_bytes)
    attached = {**({"attachments": kept} if kept else {}), **({"dropped": dropped} if dropped else {})}
    entry = {**attached, "kind": frames.THREAD_MAIL_IN, "from": mail.sender, "name": mail.sender_name, "subject": mail.subject,
             "text": mail.reply, "original": mail.text[:ORIGINAL_CHARS], "message_id": mail.message_id,
             "automatic": mail.automatic, "ts": now}
    ref, previous = await _thread_for(rt, mail, envelope)
    if ref is not None:
        outcome = await add_customer_mail(rt, ref, mail.fingerprint, entry, _retention_seconds(rt), blobs)
        if outcome == "stored":
            log.info("mail stored in ticket %s%s", ref, " (automatic)" if mail.automatic else "")
            return Taken("stored", ref)
        if outcome.startswith("duplicate:"):
            return Taken("duplicate", outcome.partition(":")[2])
        # the ticket was purged since we looked: the mail starts a new one below
    if mail.automatic or not mail.sender:
        log.info("automatic or sender-less mail answering no ticket ignored")
        return Taken("ignored", reason="automatic" if mail.automatic else "no sender")
    contact = {"name": mail.sender_name, "email": mail.sender, "subject": mail.subject,
               **({"plan": plan} if (plan := await _plan_of_sender(rt, mail.sender)) else {}),
               **({"previous_ref": previous} if previous else {})}
    first = {**attached, "kind": frames.THREAD_MAIL_IN, "text": mail.reply, "subject": mail.subject, "message_id": mail.message_id,
             "original": mail.text[:ORIGINAL_CHARS], "ts": now}
    ref, made = await open_mail_ticket(rt, mail.fingerprint, contact, first, _retention_seconds(rt), blobs)
    if not made:
        return Taken("duplicate", ref)
    await record_ticket(rt.redis, frames.TRIGGER_EMAIL, now)
    plan, lang, topic = await rt.redis.hmget(keys.ticket(ref), ["plan", "lang", "topic"])
    await rollups.ticket_made(rt, ref, {"plan": (plan or b"").decode(), "lang": (lang or b"").decode(),
                                        "topic": (topic or b"").decode(), "channel": frames.CHANNEL_EMAIL},
                              frames.TRIGGER_EMAIL, now)
    log.info("mail opened ticket %s", ref)
    return Taken("opened", ref)
