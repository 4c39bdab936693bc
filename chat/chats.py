"""A chat's profile and status in Redis, and the secret resume token that reopens it."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from redis.asyncio import Redis

from chat import keys
from chat.store import Lua


def new_chat_id() -> str:
    """Random, unguessable, and safe on a command line (never starts with "-")."""
    return secrets.token_hex(12)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def create_chat_on(pipe: Any, chat_id: str, fields: dict[str, Any], resume_ttl: int) -> str:
    """Queue the writes of a new chat on a pipeline the caller executes (with the rest of a
    hello's writes: one round trip); return its resume token. Only the token's hash is stored."""
    token = secrets.token_urlsafe(24)
    clean = {k: ("1" if v is True else "0" if v is False else "" if v is None else v) for k, v in fields.items()}
    # The token's hash (never the token) is kept with the chat, so that a chat deleted early
    # (the visitor never wrote: see lifecycle) takes its resume key with it.
    clean["resume_hash"] = token_hash(token)
    pipe.hset(keys.chat(chat_id), mapping=clean)
    pipe.set(keys.resume(clean["resume_hash"]), chat_id, ex=resume_ttl)
    if fields.get("verified") is True and fields.get("email") and fields.get("plan"):
        from transcripts.contact import email_hash  # one hashing of addresses for every index

        pipe.set(keys.plan_by_email(email_hash(fields["email"])), fields["plan"], ex=resume_ttl)
    return token


async def chat_for_resume(redis: Redis, token: str) -> str | None:
    if not isinstance(token, str) or not 16 <= len(token) <= 64:
        return None
    found = await redis.get(keys.resume(token_hash(token)))
    return found.decode() if found else None


async def load_chat(redis: Redis, chat_id: str) -> dict[str, str] | None:
    """The chat hash as str -> str, or None for an unknown chat."""
    return decode_chat(await redis.hgetall(keys.chat(chat_id)))


def decode_chat(raw: dict[bytes, bytes]) -> dict[str, str] | None:
    """A chat hash as read from Redis (HGETALL), as str -> str; None when it is empty."""
    if not raw:
        return None
    return {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}


# KEYS: the chat's hash; ARGV: the agent who lost it, the queued status. The chat goes back
# to "queued" only if no other agent's assignment was recorded since: once back in line it
# can be claimed at once, and a record written after that claim must not be undone.
REQUEUED_RECORD = Lua("""
local agent = redis.call('HGET', KEYS[1], 'agent')
if agent and agent ~= '' and agent ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'agent', '', 'agent_name', '')
return 1
""")


async def record_requeued(redis: Redis, chat_id: str, previous_agent: str, queued: str) -> bool:
    """Mark the chat back in line, unless another agent took it meanwhile (False then)."""
    return bool(await REQUEUED_RECORD(redis, [keys.chat(chat_id)], [previous_agent, queued]))


async def update_chat(redis: Redis, chat_id: str, **fields: Any) -> None:
    clean = {k: ("1" if v is True else "0" if v is False else "" if v is None else v) for k, v in fields.items()}
    await redis.hset(keys.chat(chat_id), mapping=clean)


def visitor_profile(chat: dict[str, str]) -> dict[str, Any]:
    """What an agent is shown about the visitor (docs/protocol.md: name, email, plan, verified,
    lang, topic, page; plus the emergency flag)."""
    return {
        "name": chat.get("name", ""),
        "email": chat.get("email", ""),
        "plan": chat.get("plan", ""),
        "verified": chat.get("verified") == "1",
        "lang": chat.get("lang", ""),
        "topic": chat.get("topic", ""),
        "page": chat.get("page", ""),
        "emergency": chat.get("emergency") == "1",
    }


# KEYS: the chat's hash; ARGV: score, comment. The rating and its comment in one step, once.
_RATE = Lua("""
if redis.call('HSETNX', KEYS[1], 'rating', ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'rating_comment', ARGV[2])
return 1
""")


async def rate_chat(redis: Redis, chat_id: str, score: int, comment: str) -> bool:
    """Record a chat's rating with its comment together (a crash between two writes would
    keep the score and lose the words); False when the chat was rated already."""
    return bool(await _RATE(redis, [keys.chat(chat_id)], [score, comment]))
