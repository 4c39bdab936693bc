"""Delivery into a local Maildir (<LIVECHAT_DATA_DIR>/mail/ when SMTP_URL is unset), so a new
install needs no mail server: read the mail with mutt -f var/mail, any Maildir reader, or cat
var/mail/new/*. Writes run in a thread so the event loop never blocks on the disk."""

from __future__ import annotations

import asyncio
import mailbox
from pathlib import Path
from typing import Sequence


class MaildirBackend:
    """Adds each mail to one Maildir (new/), as a local delivery agent would."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def describe(self) -> str:
        return f"maildir {self.path}"

    def _deliver(self, message: bytes, sender: str, recipients: Sequence[str]) -> str:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)  # private: transcripts are personal data
        for sub in ("tmp", "new", "cur"):
            (self.path / sub).mkdir(mode=0o700, exist_ok=True)
        box = mailbox.Maildir(self.path, factory=None, create=False)
        envelope = f"Return-Path: <{sender}>\n" + "".join(f"Delivered-To: {r}\n" for r in recipients)
        return box.add(envelope.encode("ascii", "replace") + message)

    async def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> None:
        await asyncio.to_thread(self._deliver, message, sender, recipients)
