"""The team's canned replies: a shortcut (typed after "/" in the composer) and its text,
kept in one Redis hash (keys.CANNED_REPLIES) shared by every agent and hub."""

from __future__ import annotations

import re

from redis.asyncio import Redis

from chat import keys
from chat.frames import MAX_TEXT_CHARS, clean_text

SHORTCUT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MAX_REPLIES = 200


async def list_replies(redis: Redis) -> list[dict[str, str]]:
    """Every canned reply, sorted by shortcut."""
    raw = await redis.hgetall(keys.CANNED_REPLIES)
    replies = [{"shortcut": k.decode(), "text": v.decode("utf-8", "replace")} for k, v in raw.items()]
    return sorted(replies, key=lambda r: r["shortcut"])


async def save_reply(redis: Redis, shortcut: str, text: str) -> dict[str, str]:
    """Create or replace one reply; ValueError says what is wrong with the input."""
    shortcut = (shortcut or "").strip().lower()
    if not SHORTCUT.match(shortcut):
        raise ValueError("a shortcut is 1-32 of a-z, 0-9, '_' or '-'")
    text = clean_text(text or "").strip()
    if not text or len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"the text is 1 to {MAX_TEXT_CHARS} characters")
    if not await redis.hexists(keys.CANNED_REPLIES, shortcut) and await redis.hlen(keys.CANNED_REPLIES) >= MAX_REPLIES:
        raise ValueError(f"at most {MAX_REPLIES} canned replies")
    await redis.hset(keys.CANNED_REPLIES, shortcut, text)
    return {"shortcut": shortcut, "text": text}


async def delete_reply(redis: Redis, shortcut: str) -> bool:
    return bool(await redis.hdel(keys.CANNED_REPLIES, (shortcut or "").strip().lower()))


DEMO_REPLIES = {
    "hello": "Hello, thanks for reaching out! How can I help you today?",
    "verify": "For your security we never ask for your password. Could you sign in on our website first, so that your identity shows as verified here?",
    "ticket": "I have turned this into a ticket; you will get an email with its reference number. Reply to that email to add details.",
    "bye": "Glad I could help. Have a good day!",
}


async def seed_demo(redis: Redis) -> None:
    """Give the demo desk a few replies to try the "/" shortcut with (only while it has none)."""
    if not await redis.exists(keys.CANNED_REPLIES):
        await redis.hset(keys.CANNED_REPLIES, mapping=DEMO_REPLIES)
