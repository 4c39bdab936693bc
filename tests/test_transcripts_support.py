"""Fixtures and helpers shared by the transcripts tests (tickets, mail, transcripts).

test_tickets_*, test_mail_* and test_transcripts_* import the fixtures from here (pytest
registers fixtures imported into a test module). These tests use their own Redis database
on the session's real redis-server (DB below), flushed before each test: the outbox and the
ticket indexes are global keys, and a `livechat serve` started by other tests (database 0)
drains its own outbox, so it must never see ours.
"""

from __future__ import annotations

import email
import email.policy
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from redis.asyncio import Redis

from chat.chatlog import ChatLog
from chat.chats import create_chat, update_chat
from chat.config import load_config
from chat.runtime import Runtime
from chat.settings import Settings
from tests.servers import DATABASES, db_url, eventually, free_port  # noqa: F401 - eventually is re-exported

DB = DATABASES["transcripts"]  # this part's own Redis database (the hub and the core tests use 0)
SUPPORT = "support@example.org"
MAIL_FROM = "Example Support <help@example.org>"


# --- a real SMTP server ----------------------------------------------------------


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: email.message.EmailMessage


class RecordingHandler:
    """aiosmtpd handler keeping every accepted message (the server runs in its own thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    """A real aiosmtpd server on a loopback port that can be stopped and restarted (same
    port) to simulate an outage."""

    port: int = field(default_factory=free_port)
    handler: RecordingHandler = field(default_factory=RecordingHandler)
    tls_context: Any = None        # STARTTLS offered when set
    ssl_context: Any = None        # implicit TLS when set
    controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> "SmtpServer":
        kwargs: dict[str, Any] = {}
        if self.tls_context is not None:
            kwargs["tls_context"] = self.tls_context
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     ssl_context=self.ssl_context, **kwargs)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.recipients]


@pytest.fixture
def smtp_server():
    server = SmtpServer().start()
    yield server
    server.stop()


# --- Redis and the runtime ---------------------------------------------------------


@pytest.fixture
async def tdb(redis_url):
    """A client on this part's own database, emptied before the test."""
    client = Redis.from_url(db_url(redis_url, DB))
    await client.flushdb()
    yield client
    await client.aclose()


def make_runtime(redis_url: str, data_dir: Path, smtp_url: str | None = None, **settings: Any) -> Runtime:
    return Runtime(
        settings=Settings(smtp_url=smtp_url, data_dir=data_dir, support_address=SUPPORT, mail_from=MAIL_FROM, **settings),
        config=load_config(None),
        redis=Redis.from_url(db_url(redis_url, DB)),
        secret=b"x" * 32,
    )


@pytest.fixture
async def rt(tdb, redis_url, smtp_server, tmp_path):
    """A Runtime whose mail goes to the test's SMTP server."""
    runtime = make_runtime(redis_url, tmp_path, smtp_server.url)
    yield runtime
    await runtime.redis.aclose()


@pytest.fixture
async def rt_maildir(tdb, redis_url, tmp_path):
    """A Runtime with no SMTP_URL: mail goes to <data dir>/mail."""
    runtime = make_runtime(redis_url, tmp_path / "data")
    yield runtime
    await runtime.redis.aclose()


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


def text_part(msg: email.message.EmailMessage) -> str:
    return msg.get_body(("plain",)).get_content()


def html_part(msg: email.message.EmailMessage) -> str:
    return msg.get_body(("html",)).get_content()
