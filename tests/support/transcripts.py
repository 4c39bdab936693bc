"""The transcripts tests' Runtime (tickets, mail, export) and chats opened through it.

These tests use their own Redis database on the session's real redis-server (DB below),
emptied before each test by the ``tdb`` fixture: the outbox and the ticket indexes are global
keys, and a `livechat serve` started by other tests (database 0) drains its own outbox, so it
must never see ours.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from chat.chatlog import ChatLog
from chat.chats import create_chat, update_chat
from chat.config import load_config
from chat.runtime import Runtime
from chat.settings import Settings
from tests.support.mail import MAIL_FROM, SUPPORT
from tests.support.redis import DATABASES, db_url

DB = DATABASES["transcripts"]  # this part's own Redis database (the hub and the core tests use 0)


# --- Redis and the runtime ---------------------------------------------------------


def make_runtime(redis_url: str, data_dir: Path, smtp_url: str | None = None, **settings: Any) -> Runtime:
    return Runtime(
        settings=Settings(smtp_url=smtp_url, data_dir=data_dir, support_address=SUPPORT, mail_from=MAIL_FROM, **settings),
        config=load_config(None),
        redis=Redis.from_url(db_url(redis_url, DB)),
        secret=b"x" * 32,
    )


# --- chats, as the hub writes them ---------------------------------------------------


async def make_chat(
    redis: Redis,
    messages: list[tuple[str, str]] = (("visitor", "Hello, I cannot log in."),),
    *,
    name: str = "Ada",
    email_address: str | None = "ada@example.org",
    status: str = "offline",
    lang: str = "en",
    **fields: Any,
) -> str:
    """A chat through the lead's chat.chats / chat.chatlog, with messages (sender, text)."""
    now = time.time()
    profile = {
        "site": "default", "plan": "free", "verified": False, "sub": "", "name": name,
        "email": email_address or "", "lang": lang, "topic": "billing", "page": "https://example.org/pricing",
        "emergency": False, "status": "queued" if status == "closed" else status, "agent": "", "agent_name": "",
        "created_at": repr(now), "arrived_at": repr(now),
    }
    profile.update(fields)
    chat_id, _token = await create_chat(redis, profile, resume_ttl=3600)
    log = ChatLog(redis)
    for i, (sender, text) in enumerate(messages):
        await log.append(chat_id, sender, text, now + i, client_id=secrets.token_hex(4),
                         name="Sam" if sender == "agent" else None)
    if status == "closed":
        await update_chat(redis, chat_id, status="closed", closed_at=fields.get("closed_at", repr(now)),
                          closed_reason="resolved")
    return chat_id
