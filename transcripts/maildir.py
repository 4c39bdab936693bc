"""Delivery into a local Maildir (<LIVECHAT_DATA_DIR>/mail/ when SMTP_URL is unset), so a new
install needs no mail server: read the mail with mutt -f var/mail, any Maildir reader, or cat
var/mail/new/*. Writes run in a thread so the event loop never blocks on the disk."""

from __future__ import annotations

import asyncio
import mailbox
import os
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import Sequence

HEADER_BYTES = 64 * 1024  # of a file read to decide whether to purge it: the headers are at its top
_WHO = ("To", "Cc", "Reply-To", "Delivered-To")


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


def purge(path: Path, older_than: float | None = None, refs: frozenset[str] = frozenset(),
          addresses: frozenset[str] = frozenset()) -> int:
    """Delete our mails (those with X-Livechat-Ref) from a Maildir: written before
    `older_than` (retention), about one of `refs`, or to/from one of `addresses` (erasure).
    Mail of anyone else in a shared Maildir is never touched. Blocking: run in a thread."""
    removed = 0
    parser = BytesHeaderParser()
    wanted = {a.strip().lower() for a in addresses}
    for sub in ("new", "cur"):
        folder = Path(path) / sub
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if not entry.is_file(follow_symlinks=False):
                continue
            try:
                with open(entry.path, "rb") as handle:
                    headers = parser.parsebytes(handle.read(HEADER_BYTES))
                ref = str(headers.get("X-Livechat-Ref", "")).strip()
                if not ref:
                    continue
                who = {a.lower() for _, a in getaddresses([str(v) for h in _WHO for v in headers.get_all(h, [])])}
                if ((older_than is not None and entry.stat().st_mtime < older_than) or ref in refs
                        or who & wanted):
                    os.unlink(entry.path)
                    removed += 1
            except (OSError, ValueError):
                continue  # gone meanwhile, or unreadable: the next run looks again
    return removed


async def purge_maildir(path: Path | None, older_than: float | None = None, refs: frozenset[str] = frozenset(),
                        addresses: frozenset[str] = frozenset()) -> int:
    """purge() off the event loop; nothing to do when mail does not go to a Maildir."""
    if path is None:
        return 0
    return await asyncio.to_thread(purge, path, older_than, refs, addresses)
