"""The archive of closed chats: which chats are closed and since when (for retention), and
which belong to an email address (for erasure). The messages themselves stay where they
already are, in the chat's msgpack log in Redis; nothing is copied."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from chat import keys
from transcripts.contact import email_hash, normalize_email


def add_to_archive(pipe, chat_id: str, closed_at: float, email: str | None) -> None:
    """Queue the archive entries of a closed chat on a pipeline the caller executes (closing
    a chat writes them in the same round trip as its status)."""
    pipe.zadd(keys.CHATS_CLOSED, {chat_id: closed_at}, nx=True)
    address = normalize_email(email)
    if address:
        pipe.sadd(keys.chats_by_email(email_hash(address)), chat_id)


def chat_keys(chat_id: str) -> list[str]:
    """Every key that holds something of one chat (its profile, log, client ids, ticket pointer)."""
    return [keys.chat(chat_id), keys.chat_log(chat_id), keys.chat_client_ids(chat_id), keys.chat_ticket(chat_id)]


async def delete_chat(redis: Redis, chat_id: str) -> bool:
    """Remove a chat (one transaction of its slot), then its archive entries (one of the
    archive's slot, {ar}). In that order: a crash between leaves an archive entry whose chat is
    gone, which the next retention run removes; never a chat the archive has forgotten. True
    when this call removed it (so concurrent purgers count each chat once)."""
    raw_email = await redis.hget(keys.chat(chat_id), "email")
    email = normalize_email(raw_email.decode("utf-8", "replace") if raw_email else "")
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(*chat_keys(chat_id))
        deleted, = await pipe.execute()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zrem(keys.CHATS_CLOSED, chat_id)
        if email:
            pipe.srem(keys.chats_by_email(email_hash(email)), chat_id)
        removed, *_ = await pipe.execute()
    return bool(removed) or bool(deleted)


async def earlier_chats(redis: Redis, sub: str, email: str, limit: int = 10) -> list[dict[str, Any]]:
    """A verified customer's closed chats (their own: the same `sub`, not merely the same
    address), newest first, as summaries for an agent's customer panel."""
    if not sub or not email:
        return []
    ids = sorted(m.decode() for m in await redis.smembers(keys.chats_by_email(email_hash(normalize_email(email)))))
    fields = ["sub", "verified", "created_at", "closed_at", "closed_reason", "agent_name", "ticket"]
    rows = []
    if ids:
        async with redis.pipeline(transaction=False) as pipe:
            for chat_id in ids:
                pipe.hmget(keys.chat(chat_id), fields)
            rows = await pipe.execute()
    found = []
    for chat_id, values in zip(ids, rows):
        record = {f: (v.decode("utf-8", "replace") if v is not None else "") for f, v in zip(fields, values)}
        if record["verified"] != "1" or record["sub"] != sub:
            continue
        found.append({"chat_id": chat_id, "created_at": float(record["created_at"] or 0),
                      "closed_at": float(record["closed_at"] or 0) or None, "reason": record["closed_reason"],
                      "agent_name": record["agent_name"], "ticket": record["ticket"]})
    found.sort(key=lambda c: c["created_at"], reverse=True)
    return found[:limit]
