"""Reading one incoming mail: who sent it, what it answers, and what the customer wrote.

Pure code (no Redis, no I/O): the intake calls :func:`parse` in a thread, because a mail can
be megabytes of MIME. What comes out is all the intake needs to thread the mail into a ticket
and to store it: the reply without its quoted history and signature (the thread), the whole
text (for "show original"), and whether the mail was sent by a machine (RFC 3834), which
must never reopen a ticket nor be answered.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser

from mailparser_reply import EmailReplyParser

from chat.frames import clean_line as one_line
from transcripts.contact import normalize_email
from transcripts.masking import mask
from transcripts.refs import ALPHABET, LENGTH, PREFIX, normalize_ref

MAX_TEXT_CHARS = 20_000   # of the reply kept in the thread; the original keeps the rest
REPLY_LANGUAGES = ["en", "fr", "de", "es", "it", "nl"]  # quote headers the reply parser knows

_SUBJECT_REF = re.compile(rf"\[\s*({PREFIX}[{ALPHABET}]{{{LENGTH}}})\s*\]", re.IGNORECASE)
# Our own Message-IDs: <LC-XXXXXX.kind@domain> (transcripts.mailer.message_id).
_OUR_MESSAGE_ID = re.compile(rf"^<?({PREFIX}[{ALPHABET}]{{{LENGTH}}})\.[a-z0-9.-]+@", re.IGNORECASE)
_BULK = {"bulk", "list", "junk", "auto_reply"}
_RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To")


@dataclass(frozen=True)
class Attachment:
    name: str          # the file name the sender gave, made one printable line
    content_type: str  # as declared (never trusted: files are only ever served as downloads)
    data: bytes


@dataclass(frozen=True)
class Inbound:
    message_id: str              # as the sender wrote it ("" when missing)
    fingerprint: str             # what makes a redelivery recognisable: the Message-ID, or the bytes
    sender: str                  # normalized address of From
    sender_name: str
    subject: str
    reply: str                   # the new text: quotes and signature removed, masked
    text: str                    # the whole text body, masked
    answers: tuple[str, ...]     # references found in our Message-IDs of In-Reply-To / References
    subject_ref: str | None      # a reference tagged in the subject, [LC-XXXXXX]
    recipients: tuple[str, ...]  # addresses it was sent to (To, Cc, Delivered-To, X-Original-To)
    automatic: bool              # auto-reply, bulk or list mail (RFC 3834): never answered, never reopens
    size: int
    attachments: tuple[Attachment, ...] = ()


def clean_line(value: str | None, limit: int = 200) -> str:
    """A header value made safe to store and show: one printable line, bounded."""
    return one_line(str(value or ""))[:limit]


class _Text(HTMLParser):
    """HTML mail to plain text: the words, paragraph breaks, no script or style."""

    _BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "blockquote", "pre", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _body(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, AssertionError):
        payload = part.get_payload(decode=True) or b""
        content = payload.decode("utf-8", "replace")
    if not isinstance(content, str):
        return ""
    return html_to_text(content) if part.get_content_type() == "text/html" else content


def strip_reply(text: str) -> str:
    """The new part of a reply: without the quoted history ("On … wrote:", "> …") and the
    signature. Falls back to the whole text when the parser finds nothing."""
    try:
        replies = EmailReplyParser(languages=REPLY_LANGUAGES).read(text=text).replies
    except Exception:  # a third-party heuristic must never lose a customer's mail
        replies = []
    reply = replies[0].body.strip() if replies else ""
    lines = (reply or text.strip()).splitlines()
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith(">")):
        lines.pop()  # a quoted tail without an "On … wrote:" line before it
    return "\n".join(lines).strip() or text.strip()


def _attachments(msg: EmailMessage) -> tuple[Attachment, ...]:
    found = []
    for part in msg.iter_attachments():
        if part.is_multipart():
            continue
        try:
            data = part.get_payload(decode=True) or b""
        except (LookupError, ValueError, AssertionError):
            continue
        name = clean_line(part.get_filename() or "", 150) or "attachment"
        found.append(Attachment(name.replace("/", "_").replace("\\", "_"), clean_line(part.get_content_type(), 100), data))
    return tuple(found)


def _ids(value: str | None) -> list[str]:
    return re.findall(r"<[^<>\s]+>", value or "")


def _answers(msg: EmailMessage) -> tuple[str, ...]:
    refs: list[str] = []
    for message_id in _ids(str(msg.get("In-Reply-To", ""))) + _ids(str(msg.get("References", ""))):
        found = _OUR_MESSAGE_ID.match(message_id)
        ref = normalize_ref(found.group(1)) if found else None
        if ref and ref not in refs:
            refs.append(ref)
    return tuple(refs)


def _automatic(msg: EmailMessage) -> bool:
    auto = str(msg.get("Auto-Submitted", "no")).split(";")[0].strip().lower()
    precedence = str(msg.get("Precedence", "")).strip().lower()
    return (auto not in ("", "no") or precedence in _BULK or msg.get("List-Id") is not None
            or msg.get("X-Autoreply") is not None or msg.get("X-Autorespond") is not None)


def parse(raw: bytes) -> Inbound:
    """Read one RFC 5322 message (any MIME shape, any charset). Never raises for a broken
    mail: what cannot be read is simply empty."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    message_id = clean_line(str(msg.get("Message-ID", "")), 500)
    name, address = parseaddr(str(msg.get("From", "")))
    if not address:
        senders = getaddresses([str(msg.get("Sender", "")), str(msg.get("Return-Path", ""))])
        address = next((a for _, a in senders if a), "")
    subject = clean_line(str(msg.get("Subject", "")), 300)
    found = _SUBJECT_REF.search(subject)
    text = mask(_body(msg).replace("\r\n", "\n"))
    fingerprint = hashlib.sha256(message_id.encode() if message_id else raw).hexdigest()
    return Inbound(
        message_id=message_id,
        fingerprint=fingerprint,
        sender=normalize_email(clean_line(address, 254)),
        sender_name=clean_line(name, 100),
        subject=subject,
        reply=strip_reply(text)[:MAX_TEXT_CHARS],
        text=text,
        answers=_answers(msg),
        subject_ref=normalize_ref(found.group(1)) if found else None,
        recipients=tuple(a for _, a in getaddresses([str(v) for h in _RECIPIENT_HEADERS for v in msg.get_all(h, [])]) if a),
        automatic=_automatic(msg),
        size=len(raw),
        attachments=_attachments(msg),
    )
