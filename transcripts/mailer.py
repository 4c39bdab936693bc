"""Compose the two mails a ticket sends: the visitor's confirmation and the support inbox's
copy. Composition only (email.message.EmailMessage); queuing is outbox.py, sending smtp.py
and maildir.py.

Each mail gets a stable Message-ID derived from the ticket reference, so that if the outbox
ever sends one twice (a crash between the server's acceptance and our bookkeeping), mail
servers and readers can recognise the duplicate.
"""

from __future__ import annotations

import email.policy
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from datetime import datetime, timezone
from typing import Any

from chat.config import Limits
from chat import frames
from chat.frames import clean_line
from chat.settings import Settings
from transcripts.contact import email_hash, is_mailable
from transcripts.templating import pick_template, render, transcript_rows

VISITOR_SUBJECTS = {"en": "We received your request", "fr": "Nous avons bien reçu votre demande"}
TEAM_SIGNATURES = {"en": "The support team", "fr": "L'équipe du support"}  # when LIVECHAT_MAIL_FROM has no name
POLICY = email.policy.default  # LF line ends; the SMTP client converts to CRLF on the wire


@dataclass(frozen=True)
class OutgoingMail:
    """One composed mail with its envelope, ready for the outbox."""

    mail_id: str            # outbox id, stable per ticket and recipient kind
    kind: str               # "visitor" or "inbox"
    ref: str
    sender: str             # envelope MAIL FROM
    recipients: tuple[str, ...]
    about: str              # email_hash of the visitor this mail concerns ("" if none), for erasure
    data: bytes             # the whole message (RFC 5322, LF line ends), serialised where it was composed


MAIL_KINDS = ("visitor", "inbox")


def mail_id(ref: str, kind: str) -> str:
    """The outbox id of a ticket's mail: stable, so a ticket can only ever queue these two."""
    return f"{ref}.{kind}"


def mail_ids(ref: str) -> list[str]:
    return [mail_id(ref, kind) for kind in MAIL_KINDS]


def header_text(value: Any, limit: int = 200) -> str:
    """Visitor-supplied text made safe for a header: one printable line (the email policy
    raises on a NEL or any other line boundary), bounded length."""
    return clean_line(str(value or ""))[:limit]


def envelope_address(value: str) -> str:
    """The bare address of "Support <help@example.org>" or "help@example.org"."""
    return parseaddr(value)[1] or value.strip()


def _domain(settings: Settings) -> str:
    address = envelope_address(settings.sender)
    return address.rpartition("@")[2] or "livechat.invalid"


def message_id(ref: str, kind: str, settings: Settings) -> str:
    """Stable per ticket and recipient: resending the same mail repeats the same id."""
    return f"<{ref}.{kind}@{_domain(settings)}>"


def _ticket_link(ticket: dict[str, Any], settings: Settings) -> str:
    return f"{settings.public_url}/api/tickets/{ticket['ref']}" if settings.public_url else ""


def _lang(ticket: dict[str, Any]) -> str:
    return (ticket.get("lang") or "en").split("-")[0].lower()


def mail_transcript(messages: list[dict[str, Any]], limits: Limits) -> tuple[list[dict[str, Any]], int]:
    """The end of a transcript that fits in a mail, and how many earlier messages were left
    out: at most [limits] mail_transcript_messages messages whose text adds up to at most
    mail_transcript_bytes (UTF-8). A mail stays a few hundred KB whatever the chat (a long
    chat of escaped markup once made 30 MB mails); the ticket keeps every message."""
    kept: list[dict[str, Any]] = []
    size = 0
    last = messages[-limits.mail_transcript_messages:] if limits.mail_transcript_messages else []
    for message in reversed(last):
        size += len(str(message.get("text", "")).encode("utf-8", "replace"))
        if size > limits.mail_transcript_bytes:
            break
        kept.append(message)
    kept.reverse()
    return kept, len(messages) - len(kept)


def _context(ticket: dict[str, Any], settings: Settings, limits: Limits) -> dict[str, Any]:
    name = header_text(ticket.get("name"), 100)
    shown, earlier = mail_transcript(ticket.get("transcript") or [], limits)
    return {
        **ticket,
        "name": name,
        "email": ticket.get("email") or "",
        "agent_name": ticket.get("agent_name") or "",
        "rows": transcript_rows(shown, name),
        "earlier": earlier,
        "team": header_text(parseaddr(settings.sender)[0]) or TEAM_SIGNATURES.get(_lang(ticket), TEAM_SIGNATURES["en"]),
        "link": _ticket_link(ticket, settings),
        "page_link": "",  # the customer's private page (transcripts/customer.py), when known
        "promise": "",  # when to expect an answer, in the customer's language
    }


def _base(ref: str, kind: str, subject: str, ticket: dict[str, Any], settings: Settings) -> EmailMessage:
    msg = EmailMessage(policy=POLICY)
    msg["Subject"] = subject
    msg["From"] = settings.sender
    msg["Date"] = format_datetime(datetime.fromtimestamp(float(ticket["created_at"]), timezone.utc))
    msg["Message-ID"] = message_id(ref, kind, settings)
    msg["X-Livechat-Ref"] = ref
    return msg


def _address(ticket: dict[str, Any]) -> Address:
    """The visitor's address for To / Reply-To: with the name only when the customer's site
    vouched for both (an unverified name is whatever the visitor typed, a phishing line
    included, and a reply would carry it to the address)."""
    name = header_text(ticket.get("name"), 100) if ticket.get("verified") else ""
    return Address(display_name=name, addr_spec=ticket["email"].strip())


def visitor_confirmation(ticket: dict[str, Any], settings: Settings, limits: Limits, page_link: str = "",
                         promise: str = "") -> EmailMessage:
    """The visitor's receipt: reference in the subject, transcript in the body, an invitation
    to add details by replying (or on the private page), when to expect an answer; Reply-To
    is the support inbox so a reply lands there."""
    ref = ticket["ref"]
    lang = _lang(ticket)
    subject = f"[{ref}] {VISITOR_SUBJECTS.get(lang, VISITOR_SUBJECTS['en'])}"
    msg = _base(ref, "visitor", subject, ticket, settings)
    verified = bool(ticket.get("verified"))
    msg["To"] = _address(ticket)
    msg["Reply-To"] = ticket.get("reply_to") or settings.support_address
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: auto-responders must not answer it
    context = _context(ticket, settings, limits)
    if not verified:
        # Anyone can type any address into the widget: to an address nobody vouched for, the
        # desk repeats nothing the visitor wrote (name, messages), so it cannot be made to
        # carry someone's words into a stranger's inbox. The ticket keeps everything.
        context.update(name="", rows=[], earlier=0)
    context["show_transcript"] = verified
    context.update(page_link=page_link, promise=promise)
    msg.set_content(render(pick_template("visitor_confirmation", "txt", lang), **context))
    msg.add_alternative(render(pick_template("visitor_confirmation", "html", lang), **context), subtype="html")
    return msg


def inbox_ticket(ticket: dict[str, Any], settings: Settings, limits: Limits) -> EmailMessage:
    """The support inbox's copy of the ticket; Reply-To is the visitor when we can mail them."""
    ref = ticket["ref"]
    name = header_text(ticket.get("name"), 100)
    who = name or "a visitor"
    topic = header_text(ticket.get("topic"), 60)
    flag = "EMERGENCY " if ticket.get("emergency") else ""
    subject = f"[{ref}] {flag}Ticket from {who}" + (f" ({topic})" if topic else "")
    msg = _base(ref, "inbox", subject, ticket, settings)
    msg["To"] = settings.support_address
    if is_mailable(ticket.get("email")):
        msg["Reply-To"] = _address(ticket)
    context = _context(ticket, settings, limits)
    msg.set_content(render("inbox_ticket.txt", **context))
    msg.add_alternative(render("inbox_ticket.html", **context), subtype="html")
    return msg


def ticket_mails(ticket: dict[str, Any], settings: Settings, limits: Limits, *, confirm: bool = True,
                 page_link: str = "", promise: str = "") -> list[OutgoingMail]:
    """The mails one new ticket sends: the visitor's confirmation (only with a usable email
    address, and unless ``confirm`` is False: the address reached its daily cap) and the
    support inbox's copy (always), composed and serialised. CPU work (templates, MIME,
    encoding): call it in a thread, never on the event loop."""
    ref = ticket["ref"]
    sender = envelope_address(settings.sender)
    about = email_hash(ticket["email"]) if ticket.get("email") else ""
    mails = []
    if confirm and is_mailable(ticket.get("email")):
        message = visitor_confirmation(ticket, settings, limits, page_link, promise)
        mails.append(OutgoingMail(mail_id(ref, "visitor"), "visitor", ref, sender, (ticket["email"].strip(),), about,
                                  message.as_bytes(policy=POLICY)))
    message = inbox_ticket(ticket, settings, limits)
    mails.append(OutgoingMail(mail_id(ref, "inbox"), "inbox", ref, sender, (envelope_address(settings.support_address),),
                              about, message.as_bytes(policy=POLICY)))
    return mails


# --- mails of a ticket's life: an agent's answer, the notice that it was solved ----------

REPLY_FOOTERS = {
    "en": "To add anything, reply to this mail (keep {ref} in the subject).",
    "fr": "Pour ajouter quoi que ce soit, répondez à ce message (gardez {ref} dans l'objet).",
}
PAGE_LINES = {
    "en": "Follow your request, or add to it, on its private page:\n{link}",
    "fr": "Suivez votre demande, ou complétez-la, sur sa page privée :\n{link}",
}
SOLVED_TEXTS = {
    "en": ("[{ref}] Your request is solved",
           "Hello,\n\nWe have not heard back from you, so we consider your request {ref} solved.\n"
           "If it is not, simply reply to this mail within {days} days and it opens again.\n\n{team}\n"),
    "fr": ("[{ref}] Votre demande est résolue",
           "Bonjour,\n\nSans nouvelles de votre part, nous considérons votre demande {ref} comme résolue.\n"
           "Si ce n'est pas le cas, répondez simplement à ce message dans les {days} jours pour la rouvrir.\n\n{team}\n"),
}


def _thread_ids(ticket: dict[str, Any], settings: Settings) -> tuple[str, list[str]]:
    """(In-Reply-To, References) of a new mail in a ticket's conversation: it answers the
    customer's last mail (or our confirmation), and references the whole chain."""
    chain = [message_id(ticket["ref"], "visitor", settings)] if ticket.get("channel") != frames.CHANNEL_EMAIL else []
    chain += [m["message_id"] for m in ticket.get("transcript", []) if m.get("message_id")]
    last_in = chain[-1] if chain else ""
    for entry in ticket.get("thread", []):
        if entry.get("message_id"):
            chain.append(entry["message_id"])
            if entry.get("kind") == frames.THREAD_MAIL_IN:
                last_in = entry["message_id"]
    return last_in, chain[-20:]  # RFC 5322 lets us trim the middle of a long chain


def conversation_message_id(ref: str, kind: str, token: str, settings: Settings) -> str:
    """The Message-ID of a mail of the conversation: it names the reference (so a reply to it
    threads) and a random token (so each answer has its own)."""
    return f"<{ref}.{kind}-{token}@{_domain(settings)}>"


def _conversation_mail(ticket: dict[str, Any], kind: str, token: str, subject: str, body: str,
                       settings: Settings, automatic: bool) -> OutgoingMail:
    ref = ticket["ref"]
    msg = EmailMessage(policy=POLICY)
    msg["Subject"] = subject
    msg["From"] = settings.sender
    msg["To"] = ticket["email"].strip()  # never a name chosen by whoever typed the address
    msg["Reply-To"] = ticket.get("reply_to") or settings.support_address
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = conversation_message_id(ref, kind, token, settings)
    in_reply_to, references = _thread_ids(ticket, settings)
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = " ".join(references)
    msg["X-Livechat-Ref"] = ref
    if automatic:
        msg["Auto-Submitted"] = "auto-replied"  # RFC 3834
    msg.set_content(body)
    about = email_hash(ticket["email"])
    return OutgoingMail(f"{ref}.{kind}-{token}", kind, ref, envelope_address(settings.sender),
                        (ticket["email"].strip(),), about, msg.as_bytes(policy=POLICY))


def _reply_subject(ticket: dict[str, Any]) -> str:
    ref = ticket["ref"]
    subject = header_text(ticket.get("subject"), 150) or VISITOR_SUBJECTS.get(_lang(ticket), VISITOR_SUBJECTS["en"])
    subject = subject.replace(f"[{ref}]", "").strip()
    return f"Re: [{ref}] {subject}"


def _after(lang: str, page_link: str, promise: str) -> str:
    """The lines under a mail's footer: when to expect an answer, and the private page."""
    lines = [promise] if promise else []
    if page_link:
        lines.append(PAGE_LINES.get(lang, PAGE_LINES["en"]).format(link=page_link))
    return "".join(f"{line}\n" for line in lines)


def agent_reply(ticket: dict[str, Any], entry: dict[str, Any], token: str, settings: Settings,
                page_link: str = "", promise: str = "") -> OutgoingMail:
    """An agent's answer to the customer, threaded under the conversation (composed in a
    thread: the caller runs it off the event loop)."""
    lang = _lang(ticket)
    team = header_text(parseaddr(settings.sender)[0]) or TEAM_SIGNATURES.get(lang, TEAM_SIGNATURES["en"])
    footer = REPLY_FOOTERS.get(lang, REPLY_FOOTERS["en"]).format(ref=ticket["ref"])
    body = (f"{entry['text']}\n\n{header_text(entry.get('name'), 100)}\n{team}\n\n-- \n{footer}\n"
            + _after(lang, page_link, promise))
    return _conversation_mail(ticket, "reply", token, _reply_subject(ticket), body, settings, automatic=False)


def solved_notice(ticket: dict[str, Any], token: str, reopen_days: float, settings: Settings,
                  page_link: str = "", promise: str = "") -> OutgoingMail:
    """The short mail of a ticket solved because the customer did not answer."""
    lang = _lang(ticket)
    subject, body = SOLVED_TEXTS.get(lang, SOLVED_TEXTS["en"])
    team = header_text(parseaddr(settings.sender)[0]) or TEAM_SIGNATURES.get(lang, TEAM_SIGNATURES["en"])
    text = body.format(ref=ticket["ref"], days=int(reopen_days), team=team)
    after = _after(lang, page_link, promise)
    if after:
        text += f"\n-- \n{after}"
    return _conversation_mail(ticket, "solved", token, subject.format(ref=ticket["ref"]), text, settings,
                              automatic=True)


LINK_TEXTS = {
    "en": ("[{ref}] The link to your request",
           "Hello,\n\nSomeone (we hope you) asked for the link to your request {ref}.\n\n{after}\n"
           "If it was not you, ignore this mail: the link only ever reaches this address.\n\n{team}\n"),
    "fr": ("[{ref}] Le lien vers votre demande",
           "Bonjour,\n\nQuelqu'un (vous, espérons-le) a demandé le lien vers votre demande {ref}.\n\n{after}\n"
           "Si ce n'était pas vous, ignorez ce message : le lien n'est envoyé qu'à cette adresse.\n\n{team}\n"),
}


def page_link_mail(ticket: dict[str, Any], token: str, settings: Settings, page_link: str, promise: str) -> OutgoingMail:
    """The private link of a ticket, mailed on request from the widget ("I have a reference"):
    only ever to the ticket's own address, threaded with the conversation."""
    lang = _lang(ticket)
    subject, body = LINK_TEXTS.get(lang, LINK_TEXTS["en"])
    team = header_text(parseaddr(settings.sender)[0]) or TEAM_SIGNATURES.get(lang, TEAM_SIGNATURES["en"])
    text = body.format(ref=ticket["ref"], after=_after(lang, page_link, promise), team=team)
    return _conversation_mail(ticket, "link", token, subject.format(ref=ticket["ref"]), text, settings, automatic=True)
