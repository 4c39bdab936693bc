"""Mail coming in over SMTP or LMTP: a listener run by `livechat worker` when LIVECHAT_MAIL_IN
is set (`smtp://127.0.0.1:2525` or `lmtp://127.0.0.1:2424`), for an MTA that relays the
support address to us (Postfix `transport`, `lmtp:` or `smtp:`).

Every mail goes through the one intake, `transcripts.intake.take`, and the answer tells the
sending MTA the truth: `250` only once the mail is stored (or was stored before, or is
deliberately ignored), `451 4.3.0` when it cannot be stored now (Redis down: the MTA keeps it
and retries, so nothing is lost), `552` for a mail over `[mail_in] max_bytes`, `550` for a
recipient that is not the support address (we are nobody's relay).

The server runs in the worker's own asyncio loop (aiosmtpd's protocol on `loop.create_server`),
not in aiosmtpd's Controller thread: `take` uses the worker's Redis client, which belongs to
that loop, and everything else the worker does is already asynchronous. Reading the mail is
non-blocking socket I/O; parsing it (megabytes of MIME) is the blocking part, and `take`
sends that to a thread, so one big mail never stalls the timers or the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import Any, AnyStr
from urllib.parse import urlsplit

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session
from redis.exceptions import RedisError

from chat.runtime import Runtime
from transcripts.contact import normalize_email
from transcripts.intake import take
from transcripts.mailer import envelope_address

log = logging.getLogger("livechat.listener")

DEFAULT_PORTS = {"smtp": 25, "lmtp": 24}
TEMPFAIL = "451 4.3.0 Mail not stored now; try again later"
NOT_OURS = "550 5.1.1 No such recipient here (only the support address)"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
IDENT = "livechat"  # the greeting names no software version


@dataclass(frozen=True)
class ListenAddress:
    """Where the listener binds and which protocol it speaks; parsed from LIVECHAT_MAIL_IN."""

    protocol: str  # "smtp" or "lmtp"
    host: str
    port: int

    def describe(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}://{host}:{self.port}"


def parse_listen_url(url: str) -> ListenAddress:
    """Read `smtp://host:port` or `lmtp://host:port`; a ValueError says what is wrong. The
    host is bound as given: loopback unless the MTA runs on another machine."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError(f"must start with smtp:// or lmtp://, not {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError("has no host to listen on (smtp://127.0.0.1:2525)")
    if parts.username or parts.password or parts.path not in ("", "/") or parts.query:
        raise ValueError("takes only a host and a port (smtp://127.0.0.1:2525)")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return ListenAddress(parts.scheme, parts.hostname, port)


def is_support_recipient(address: str, support_address: str) -> bool:
    """The support address itself, or a plus form of it (`support+billing@example.org`):
    the only recipients accepted, so the listener can never relay mail anywhere."""
    local, _, domain = normalize_email(address).rpartition("@")
    ours_local, _, ours_domain = normalize_email(envelope_address(support_address)).rpartition("@")
    if not local or not ours_local or domain != ours_domain:
        return False
    return local == ours_local or local.startswith(ours_local + "+")


class _PeerlessLog(logging.Filter):
    """aiosmtpd logs the peer's address with nearly every line; no client IP may reach a log
    here. Its routine lines (below warning) are dropped, the rest keep their text with the
    address replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        if isinstance(record.args, tuple):
            record.args = tuple("a client" if isinstance(arg, tuple) else arg for arg in record.args)
        return True


class IntakeHandler:
    """aiosmtpd hooks: which recipients are ours, and the answer after DATA."""

    def __init__(self, rt: Runtime, protocol: str):
        self.rt = rt
        self.protocol = protocol

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if not is_support_recipient(address, self.rt.settings.support_address):
            return NOT_OURS
        if len(envelope.rcpt_tos) >= self.rt.config.mail_in.max_recipients:
            return TOO_MANY_RECIPIENTS
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            taken = await take(self.rt, bytes(raw), tuple(envelope.rcpt_tos))
        except (RedisError, OSError) as exc:
            log.warning("mail over %s not stored (%s); the sender was asked to retry", self.protocol,
                        type(exc).__name__)
            return TEMPFAIL
        except Exception:  # a mail we cannot read yet must not be lost: the MTA keeps it
            log.exception("mail over %s not stored; the sender was asked to retry", self.protocol)
            return TEMPFAIL
        return f"250 2.0.0 {taken.outcome}"


class _Lmtp(LMTP):
    """LMTP (RFC 2033) answers the end of DATA once per accepted recipient; aiosmtpd's LMTP
    answers once. The mail is stored once whoever it is for, so each recipient gets the same
    answer (stored, retry later, too big): repeat every final reply after the `354`."""

    _replies = 1
    _in_data = False

    async def smtp_DATA(self, arg: str) -> None:
        self._replies = max(1, len(self.envelope.rcpt_tos)) if self.envelope else 1
        try:
            await super().smtp_DATA(arg)
        finally:
            self._replies, self._in_data = 1, False

    async def push(self, status: AnyStr) -> None:
        text = status.decode() if isinstance(status, bytes) else status
        if text.startswith("354"):
            self._in_data = True
            await super().push(text)
            return
        for _ in range(self._replies if self._in_data else 1):
            await super().push(text)


async def start_listener(rt: Runtime, address: ListenAddress) -> asyncio.AbstractServer:
    """Bind the listener in the running loop; it serves until the returned server is closed."""
    logging.getLogger("mail.log").addFilter(_PeerlessLog())
    handler = IntakeHandler(rt, address.protocol)
    kind: Any = _Lmtp if address.protocol == "lmtp" else SMTP
    hostname = socket.gethostname()  # once: aiosmtpd would look up the FQDN (blocking) per connection
    limit = rt.config.mail_in.max_bytes

    def protocol() -> SMTP:
        return kind(handler, data_size_limit=limit, enable_SMTPUTF8=True, decode_data=False,
                    hostname=hostname, ident=IDENT)

    server = await asyncio.get_running_loop().create_server(protocol, address.host, address.port)
    log.info("mail listener on %s (at most %d bytes a mail)", address.describe(), limit)
    return server
