"""A visitor's right to erasure: delete every chat, ticket and queued mail of one email
address. Chats still in progress are left alone (deleting them under a live socket would
break the hub) and reported, so the request can be completed once they close."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis

from chat import frames, keys
from transcripts import outbox
from transcripts.archive import delete_chat
from transcripts.contact import email_hash, normalize_email
from transcripts.maildir import purge_maildir
from transcripts.tickets import delete_ticket


@dataclass
class Erasure:
    """What one erasure request removed (and what it could not yet)."""

    email: str
    chats: list[str] = field(default_factory=list)
    tickets: list[str] = field(default_factory=list)
    mails: list[str] = field(default_factory=list)
    mail_files: int = 0  # mails removed from the local Maildir
    still_open: list[str] = field(default_factory=list)


async def _chats_with_email(redis: Redis, email: str) -> dict[str, str]:
    """chat_id -> status for every chat whose hash carries this email: the archive index
    first, then a SCAN of chat hashes for chats that were never archived (still open, or
    closed by a hub that crashed before archiving)."""
    found: dict[str, str] = {}
    indexed = {m.decode() for m in await redis.smembers(keys.chats_by_email(email_hash(email)))}
    prefix, suffix = keys.chat("\0").split("\0")
    candidates = set(indexed)
    async for raw in redis.scan_iter(match=keys.chat("*"), count=1000):
        name = raw.decode("utf-8", "replace")
        if name.startswith(prefix) and name.endswith(suffix):
            candidates.add(name[len(prefix):-len(suffix)] if suffix else name[len(prefix):])
    ordered = sorted(candidates)
    for start in range(0, len(ordered), 500):
        batch = ordered[start:start + 500]
        async with redis.pipeline(transaction=False) as pipe:
            for chat_id in batch:
                pipe.hmget(keys.chat(chat_id), ["email", "status"])
            rows = await pipe.execute()
        for chat_id, (raw_email, raw_status) in zip(batch, rows):
            stored = normalize_email(raw_email.decode("utf-8", "replace") if raw_email else "")
            if stored == email or (chat_id in indexed and raw_email is None):
                found[chat_id] = raw_status.decode() if raw_status else frames.CHAT_CLOSED
    return found


async def erase_email(redis: Redis, address: str, maildir: Path | None = None) -> Erasure:
    """Delete the chats (closed ones), tickets and queued mails of one email address, and
    the mails to or about it in the local Maildir (when mail is written to one)."""
    email = normalize_email(address)
    report = Erasure(email)
    if not email:
        return report
    digest = email_hash(email)
    mails = [m["id"] for m in await outbox.queued(redis) + await outbox.failed_mails(redis) if m["about"] == digest]
    for chat_id, status in sorted((await _chats_with_email(redis, email)).items()):
        if status != frames.CHAT_CLOSED:
            report.still_open.append(chat_id)
        elif await delete_chat(redis, chat_id):
            report.chats.append(chat_id)
    for ref in sorted(m.decode() for m in await redis.smembers(keys.tickets_by_email(digest))):
        if await delete_ticket(redis, ref):  # with the ticket's own queued mails
            report.tickets.append(ref)
    await outbox.delete_mails(redis, mails)  # and any other mail about this address
    report.mails = mails
    report.mail_files = await purge_maildir(maildir, refs=frozenset(report.tickets), addresses=frozenset({email}))
    if not report.still_open:
        await redis.delete(keys.chats_by_email(digest))  # two slots of a cluster: two commands
        await redis.delete(keys.tickets_by_email(digest))
    return report
