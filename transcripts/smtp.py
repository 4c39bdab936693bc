"""Delivery over SMTP (aiosmtplib), configured by one URL in SMTP_URL.

    smtp://host:port                 plain connection, STARTTLS when the server offers it
    smtp://user:pass@host:587        with login (percent-encode special characters)
    smtp://host:587?starttls=require refuse to send unless STARTTLS succeeds
    smtp://127.0.0.1:25?starttls=never  a local relay whose certificate cannot be checked
    smtps://user:pass@host:465       implicit TLS from the first byte
    ...?cafile=/etc/ssl/private-ca.pem  trust a private CA (certificates are always verified)
    ...?timeout=30                   seconds per connection attempt and command
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Sequence
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

DEFAULT_TIMEOUT = 30.0
STARTTLS_MODES = {"auto": None, "require": True, "never": False}


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how to connect; parsed from SMTP_URL."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    implicit_tls: bool = False
    starttls: bool | None = None  # None: opportunistic, True: required, False: never
    cafile: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    def describe(self) -> str:
        """For logs and start-up lines: everything but the password."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpTarget:
    """Read an smtp:// or smtps:// URL; a ValueError names what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError(f"SMTP_URL must start with smtp:// or smtps://, not {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError("SMTP_URL has no host (smtp://host:port)")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"starttls", "cafile", "timeout"}
    if unknown:
        raise ValueError(f"SMTP_URL: unknown option {sorted(unknown)[0]!r} (starttls, cafile, timeout)")
    implicit = parts.scheme == "smtps"
    mode = query.get("starttls", "auto")
    if mode not in STARTTLS_MODES:
        raise ValueError("SMTP_URL: starttls must be auto, require or never")
    if implicit and mode == "require":
        mode = "never"  # already encrypted from the first byte
    try:
        port = parts.port or (465 if implicit else 25)
        timeout = float(query.get("timeout", DEFAULT_TIMEOUT))
    except ValueError as exc:
        raise ValueError(f"SMTP_URL: {exc}") from None
    return SmtpTarget(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        implicit_tls=implicit,
        starttls=False if implicit else STARTTLS_MODES[mode],
        cafile=query.get("cafile"),
        timeout=timeout,
    )


# Answers about the account or the connection, not about this mail: fixing the settings makes
# every mail deliverable again, so they stay retryable.
_SETTINGS_CODES = {530, 534, 535, 538}


def is_permanent(exc: BaseException) -> bool:
    """True when the server refused this mail for good: a 5xx answer to MAIL FROM, RCPT TO
    (every recipient) or DATA, "552 message too big" included (RFC 5321 4.2.1: the same
    mail will be refused again). Sending it every 10 minutes would only repeat the refusal."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(is_permanent(r) for r in exc.recipients)
    refused = (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError)
    return isinstance(exc, refused) and 500 <= exc.code < 600 and exc.code not in _SETTINGS_CODES


class SmtpBackend:
    """Sends each mail over its own connection (the outbox batches are small)."""

    def __init__(self, target: SmtpTarget):
        self.target = target
        self._tls_context: ssl.SSLContext | None = None
        if target.cafile:
            self._tls_context = ssl.create_default_context(cafile=target.cafile)

    def describe(self) -> str:
        return self.target.describe()

    async def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> None:
        """Hand one message to the server; raises (aiosmtplib.SMTPException, OSError) unless
        the server accepted it for every recipient."""
        t = self.target
        await aiosmtplib.send(
            message,
            sender=sender,
            recipients=list(recipients),
            hostname=t.host,
            port=t.port,
            username=t.username,
            password=t.password,
            use_tls=t.implicit_tls,
            start_tls=t.starttls,
            tls_context=self._tls_context,
            timeout=t.timeout,
        )
