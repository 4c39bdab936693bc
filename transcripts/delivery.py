"""Pick how mail leaves the outbox from SMTP_URL: SMTP (smtp://, smtps://), or, when it is
unset, the local Maildir under the data folder (maildir:/path names another Maildir)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence
from urllib.parse import unquote, urlsplit

from chat.settings import Settings
from transcripts.maildir import MaildirBackend
from transcripts.smtp import SmtpBackend, parse_smtp_url


class Backend(Protocol):
    def describe(self) -> str: ...

    async def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> None:
        """Deliver or raise; the outbox retries whatever raised."""


def backend_for(settings: Settings) -> Backend:
    """The delivery backend for these settings; ValueError for an unusable SMTP_URL (call it
    at start-up to fail fast)."""
    url = settings.smtp_url
    if not url:
        return MaildirBackend(Path(settings.data_dir) / "mail")
    scheme = urlsplit(url).scheme
    if scheme == "maildir":
        path = unquote(urlsplit(url).path)
        if not path:
            raise ValueError("SMTP_URL maildir: needs a path (maildir:/srv/mail)")
        return MaildirBackend(Path(path))
    if scheme in ("smtp", "smtps"):
        return SmtpBackend(parse_smtp_url(url))
    raise ValueError(f"SMTP_URL must start with smtp://, smtps:// or maildir:, not {url.split(':')[0]!r}")


def maildir_path(settings: Settings) -> Path | None:
    """The Maildir mail is written to (no SMTP_URL, or a maildir: one), else None: retention
    and erasure purge it like everything else."""
    backend = backend_for(settings)
    return backend.path if isinstance(backend, MaildirBackend) else None
