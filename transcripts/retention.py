"""Retention: closed chats and tickets older than the configured period ([retention] days,
default 30) are deleted for good. The worker calls purge_expired hourly; any number of
workers may run it at once (each deletion is one transaction, counted once)."""

from __future__ import annotations

from chat import frames, keys
from chat.runtime import Runtime
from transcripts.archive import delete_chat
from transcripts.delivery import maildir_path
from transcripts.maildir import purge_maildir
from transcripts.tickets import delete_ticket

BATCH = 200


async def purge_expired(rt: Runtime, now: float) -> int:
    """Delete every chat closed, and every ticket solved, before now - retention (a ticket
    still open or waiting for the customer is kept, however old), and the mails written to a
    local Maildir before then; return how many chats, tickets and mail files were deleted. ``now`` is injected (rt.clock() in production)."""
    cutoff = now - rt.config.retention_days * 86400.0
    purged = 0
    while True:
        ids = await rt.redis.zrangebyscore(keys.CHATS_CLOSED, "-inf", cutoff, start=0, num=BATCH)
        for raw in ids:
            purged += await delete_chat(rt.redis, raw.decode())
        if len(ids) < BATCH:
            break
    start = 0
    while True:  # solved tickets (indexed by creation, which comes before the solving)
        refs = await rt.redis.zrangebyscore(keys.tickets_by_status(frames.TICKET_SOLVED), "-inf", cutoff, start=start, num=BATCH)
        for raw in refs:
            solved_at = await rt.redis.hget(keys.ticket(raw.decode()), "solved_at")
            if solved_at and float(solved_at) < cutoff:
                purged += await delete_ticket(rt.redis, raw.decode())
            else:
                start += 1  # solved recently (or reopened meanwhile): kept, look past it
        if len(refs) < BATCH:
            break
    return purged + await purge_maildir(maildir_path(rt.settings), older_than=cutoff)
