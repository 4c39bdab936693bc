"""The wire format of docs/protocol.md: frame types, limits, and JSON / MessagePack coding.

Inbound frames are validated here so that the socket handlers only see well-formed dicts.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack

MSGPACK_SUBPROTOCOL = "livechat.msgpack"

# limits (characters after cleaning, unless bytes; docs/protocol.md 3.1, 3.3, 4.2, 6.1, 10)
MAX_FRAME_BYTES = 64 * 1024  # one WebSocket message; past it the socket is closed (CLOSE_TOO_BIG)
MAX_TEXT_CHARS = 4000        # a message's `text`
MAX_FIELD_CHARS = 500        # text_field's default: no field uses it
MAX_ID_CHARS = 64            # a `client_id`, and the `chat_id` or `client_id` an error echoes
MAX_TYPE_CHARS = 40          # of a refused frame's `type`, echoed in `refused` and error messages
MAX_NAME_CHARS = 100         # a visitor's `name` (hello, contact)
MAX_EMAIL_CHARS = 254        # an email address (hello, contact, identity token)
MAX_SITE_CHARS = 100         # hello's `site`
MAX_PAGE_CHARS = 2000        # hello's `page`
MAX_TOPIC_CHARS = 32         # hello's `topic`
MAX_LANG_CHARS = 24          # hello's `lang`, read before its pattern is checked
MAX_IDENTITY_CHARS = 4096    # hello's `identity` token
MAX_COMMENT_CHARS = 1000     # a rating's `comment`
MAX_USERNAME_CHARS = 64      # a transfer's `to`
MAX_REF_CHARS = 40           # ticket_viewing's `ref`

# Every value below is written on the wire, or in Redis, exactly as it is here, and named in
# backticks in docs/protocol.md (tests/test_docs.py checks): the code uses these names, never
# the string itself. Changing a value changes the protocol.

# error codes (the `code` of an `error` frame, docs/protocol.md 6.2)
BAD_FRAME = "bad_frame"
BAD_IDENTITY = "bad_identity"
BAD_RESUME = "bad_resume"
TOO_LONG = "too_long"
RATE_LIMITED = "rate_limited"
NOT_ALLOWED = "not_allowed"
UNAVAILABLE = "unavailable"
NOT_FOUND = "not_found"  # an HTTP API (the help centre) names a thing that does not exist
LIMIT_REACHED = "limit_reached"  # a per-chat, per-address or per-process cap: nothing was stored
# HTTP API error codes (`{"error": message, "code": ...}`)
BAD_QUERY = "bad_query"              # a query parameter is missing or malformed (/api/reports)
RANGE_TOO_LONG = "range_too_long"    # a report range longer than [reports] keep_days
ERROR_CODES = frozenset({BAD_FRAME, BAD_IDENTITY, BAD_RESUME, TOO_LONG, RATE_LIMITED, NOT_ALLOWED, UNAVAILABLE,
                         NOT_FOUND, LIMIT_REACHED, BAD_QUERY, RANGE_TOO_LONG})

# frame types (the `type` of a frame). One name per type, whichever way the frame goes;
# the tuples below say which socket sends or accepts which (docs/protocol.md 3-5, 10).
HELLO = "hello"                      # visitor -> hub: the first frame
WELCOME = "welcome"                  # hub -> visitor, agent: the first answer
QUEUED = "queued"                    # hub -> visitor: place in line and ETA
OFFLINE = "offline"                  # hub -> visitor: nobody can take the chat now (a reason follows)
ASSIGNED = "assigned"                # hub -> visitor, agent: an agent has the chat
RELEASED = "released"                # hub -> agent: a chat left this agent
MESSAGE = "message"                  # both ways, visitor and agent
TYPING = "typing"                    # both ways, visitor and agent
READ = "read"                        # visitor -> hub -> agent: read up to seq
LEAVE = "leave"                      # visitor -> hub: the visitor ends the chat
CONTACT = "contact"                  # visitor -> hub, and its echo
WAIT_OR_TICKET = "wait_or_ticket"    # hub -> visitor: the offer; visitor -> hub: the answer
RATE = "rate"                        # visitor -> hub
RATED = "rated"                      # hub -> visitor: the rating's echo
TICKET = "ticket"                    # hub -> visitor: the chat became a ticket
CLOSED = "closed"                    # hub -> visitor, agent: the chat is over
STATUS = "status"                    # agent -> hub, and its confirmation
CLOSE = "close"                      # agent -> hub: end a held chat
TRANSFER = "transfer"                # agent -> hub: hand a held chat on
TICKET_CHANGED = "ticket_changed"    # hub -> agent: a ticket was made or changed; fetch it again
TICKET_VIEWING = "ticket_viewing"    # agent -> hub: I have this ticket open (and am or am not replying)
TICKET_VIEWERS = "ticket_viewers"    # hub -> agents: who has a ticket open now
QUEUE = "queue"                      # hub -> supervisor: the queue snapshot
REFRESH = "refresh"                  # supervisor -> hub: a snapshot now, please
ERROR = "error"                      # hub -> any client: a refused frame or a failure

# client -> server frame types, per socket
VISITOR_SENDS = (HELLO, MESSAGE, TYPING, READ, LEAVE, CONTACT, WAIT_OR_TICKET, RATE)
AGENT_SENDS = (STATUS, MESSAGE, TYPING, CLOSE, TRANSFER, TICKET_VIEWING)
SUPERVISOR_SENDS = (REFRESH,)
CLIENT_FRAMES = frozenset(VISITOR_SENDS + AGENT_SENDS + SUPERVISOR_SENDS)
# server -> client frame types, per socket
TO_VISITOR = (WELCOME, QUEUED, OFFLINE, ASSIGNED, MESSAGE, TYPING, WAIT_OR_TICKET, TICKET, CLOSED, CONTACT, RATED,
              ERROR)
TO_AGENT = (WELCOME, ASSIGNED, RELEASED, MESSAGE, TYPING, READ, CLOSED, STATUS, TICKET_CHANGED, TICKET_VIEWERS, ERROR)
TO_SUPERVISOR = (QUEUE, ERROR)
SERVER_FRAMES = frozenset(TO_VISITOR + TO_AGENT + TO_SUPERVISOR)
TICKET_VIEWERS_SHOWN = 20  # viewers listed in one ticket_viewers frame

# chat statuses (`welcome.status`, the chat record's `status`; docs/protocol.md 3.6)
CHAT_QUEUED = "queued"      # waiting in line for an agent
CHAT_ACTIVE = "active"      # an agent holds it
CHAT_OFFLINE = "offline"    # nobody can take it now: a leave-a-message chat that ends as a ticket
CHAT_CLOSED = "closed"      # over, for good
CHAT_STATUSES = (CHAT_QUEUED, CHAT_ACTIVE, CHAT_OFFLINE, CHAT_CLOSED)
WAITING_STATUSES = (CHAT_QUEUED, CHAT_OFFLINE)  # the visitor's presence counts (visitor_grace)

# agent statuses (the `status` frame and the agent's profile; docs/protocol.md 4.1, 4.2)
AGENT_ONLINE = "online"     # takes new chats up to max_chats (set by the agent)
AGENT_AWAY = "away"         # takes none, keeps its chats (set by the agent)
AGENT_OFFLINE = "offline"   # gone past agent_grace (set by the hub only)
AGENT_CHOICES = (AGENT_ONLINE, AGENT_AWAY)  # what a `status` frame may ask for
AGENT_STATUSES = (AGENT_ONLINE, AGENT_AWAY, AGENT_OFFLINE)

# offline reasons (the `reason` of an `offline` frame; docs/protocol.md 3.1, 3.2)
OFFLINE_NO_AGENTS = "no_agents"        # nobody online can serve the chat
OFFLINE_CLOSED_HOURS = "closed_hours"  # the plan is outside its support hours, or offers no live chat
OFFLINE_BUSY = "busy"  # the desk holds [limits] max_waiting_chats already: leave a message
OFFLINE_REASONS = (OFFLINE_NO_AGENTS, OFFLINE_CLOSED_HOURS, OFFLINE_BUSY)

# close reasons (the `reason` of a `closed` frame; docs/protocol.md 3.2)
CLOSED_RESOLVED = "resolved"          # the agent closed it as resolved
CLOSED_VISITOR_LEFT = "visitor_left"  # the visitor left, and no ticket was made
CLOSED_TICKET = "ticket"              # it became a ticket (`ref` is set)
CLOSED_TIMEOUT = "timeout"            # an offline chat in which the visitor wrote nothing went idle
CLOSED_REASONS = (CLOSED_RESOLVED, CLOSED_VISITOR_LEFT, CLOSED_TICKET, CLOSED_TIMEOUT)

# the values of fields of client frames (docs/protocol.md 3.3, 4.2)
FROM_VISITOR = "visitor"              # a message's `from`
FROM_AGENT = "agent"
SENDERS = (FROM_VISITOR, FROM_AGENT)
RESOLVED = "resolved"                 # a `close` frame's `resolution`
UNRESOLVED = "unresolved"
RESOLUTIONS = (RESOLVED, UNRESOLVED)
CHOICE_WAIT = "wait"                  # a `wait_or_ticket` answer's `choice`
CHOICE_TICKET = "ticket"
WAIT_CHOICES = (CHOICE_WAIT, CHOICE_TICKET)
TO_QUEUE = "queue"                    # a `transfer` frame's `to` that gives the chat back to the line

# ticket triggers (why a ticket was made: `trigger`; docs/protocol.md 10, docs/tickets.md)
TRIGGER_OFFLINE = "offline"            # the visitor wrote in an offline chat
TRIGGER_MAX_WAIT = "max_wait"          # the visitor chose (or let time choose) a ticket after max_wait
TRIGGER_VISITOR_LEFT = "visitor_left"  # the visitor wrote, then left the line
TRIGGER_UNRESOLVED = "unresolved"      # the agent closed the chat as unresolved
TRIGGER_EMAIL = "email"                # a mail to the support address (also the ticket's channel)
CHAT_TRIGGERS = (TRIGGER_OFFLINE, TRIGGER_MAX_WAIT, TRIGGER_VISITOR_LEFT, TRIGGER_UNRESOLVED)  # a chat ends in
TRIGGERS = (*CHAT_TRIGGERS, TRIGGER_EMAIL)

# ticket channels (how a ticket came in: `channel`; docs/tickets.md, docs/reports.md)
CHANNEL_CHAT = "chat"      # a chat that became a ticket
CHANNEL_EMAIL = "email"    # a mail to the support address
CHANNELS = (CHANNEL_CHAT, CHANNEL_EMAIL)

# ticket statuses (docs/protocol.md 8.5, docs/tickets.md)
TICKET_OPEN = "open"          # waiting for us
TICKET_PENDING = "pending"    # waiting for the customer
TICKET_SOLVED = "solved"      # done
TICKET_STATUSES = (TICKET_OPEN, TICKET_PENDING, TICKET_SOLVED)

# ticket thread kinds (an entry's `kind`; docs/protocol.md 8.5, 8.10)
THREAD_MAIL_IN = "mail_in"      # a mail from the customer
THREAD_MAIL_OUT = "mail_out"    # an agent's answer, mailed
THREAD_NOTE = "note"            # an internal note: never shown to the customer
THREAD_WEB_IN = "web_in"        # a reply on the private ticket page
THREAD_WIDGET_IN = "widget_in"  # a reply from the widget (a verified customer)
THREAD_KINDS = (THREAD_MAIL_IN, THREAD_MAIL_OUT, THREAD_NOTE, THREAD_WEB_IN, THREAD_WIDGET_IN)
THREAD_CHAT = "chat"            # in a ticket's `messages`: a message of the chat it was made from
CUSTOMER_KINDS = (THREAD_MAIL_IN, THREAD_WEB_IN, THREAD_WIDGET_IN)  # what the customer wrote after the chat

# Internal events: pub/sub messages between hub processes (msgpack {"type": ...}) that the
# sockets turn into frames or closes. Never sent to a client as such, so not part of the wire
# protocol; events that do become frames as they are (assigned, closed, ...) use the frame types.
EVENT_CHANGED = "changed"     # keys.QUEUE_CHANNEL: the queue (or, with "agents", a profile) moved
EVENT_REQUEUED = "requeued"   # a chat channel: the chat is back in line; its visitor gets `queued` again
EVENT_REVOKED = "revoked"     # an agent channel: the user's sessions ended; its sockets close (1008)
EVENT_TICKET = "ticket"       # keys.TICKETS_CHANNEL: a ticket changed (hubs send `ticket_changed`)
EVENT_VIEWERS = "viewers"     # keys.TICKETS_CHANNEL: who has a ticket open (hubs send `ticket_viewers`)
INTERNAL_EVENTS = frozenset({EVENT_CHANGED, EVENT_REQUEUED, EVENT_REVOKED, EVENT_TICKET, EVENT_VIEWERS})

# close codes (docs/protocol.md 6.3)
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002  # a frame that breaks RFC 6455 (chat/ws_protocol.py)
CLOSE_INVALID_TEXT = 1007  # a text frame (or close reason) that is not UTF-8
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_UNAVAILABLE = 1011  # Redis could not be reached when the socket started; or no pong in time
CLOSE_RESTART = 1012
CLOSE_SLOW = 1013  # the client stopped reading; reconnect and resume from last_seq


def closed(reason: str, ref: str | None = None, **extra: Any) -> dict[str, Any]:
    """The `closed` frame, and the pub/sub event it comes from: ``ref`` only when a ticket was
    made; ``extra`` is the agent socket's ``chat_id``."""
    frame: dict[str, Any] = {"type": CLOSED, **extra, "reason": reason}
    if ref:
        frame["ref"] = ref
    return frame


class FrameError(Exception):
    """A refused inbound frame: answered with an error frame, the socket stays open."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def client_id_of(frame: dict[str, Any]) -> str | None:
    """The client_id of a frame, if it carries a usable one (echoed in errors that refuse it)."""
    value = frame.get("client_id")
    return value[:MAX_ID_CHARS] if isinstance(value, str) and value else None


def error(code: str, message: str, refused: dict[str, Any] | None = None) -> dict[str, Any]:
    """An error frame. One that refuses an inbound frame names it as its sender knows it: its
    type (``refused``), and its ``chat_id`` and ``client_id`` where it had them, so that the
    client can undo what it assumed on sending (a message shown as sending, a close or a
    transfer it waits for)."""
    frame: dict[str, Any] = {"type": ERROR, "code": code, "message": message}
    if refused is not None:
        frame["refused"] = refused["type"][:MAX_TYPE_CHARS]
        chat_id = refused.get("chat_id")
        if isinstance(chat_id, str) and chat_id:
            frame["chat_id"] = chat_id[:MAX_ID_CHARS]
        client_id = client_id_of(refused)
        if client_id:
            frame["client_id"] = client_id
    return frame


def encode(frame: dict[str, Any], binary: bool) -> str | bytes:
    if binary:
        return msgpack.packb(frame)
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def decode(data: str | bytes | None) -> dict[str, Any]:
    """Parse one inbound frame (text = JSON, binary = MessagePack) into a dict with a str type."""
    if data is None:
        raise FrameError(BAD_FRAME, "empty frame")
    try:
        if isinstance(data, bytes):
            obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
        else:
            obj = json.loads(data)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError, UnicodeDecodeError,
            RecursionError):  # "[[[[..." 30,000 deep fits in one frame and would overflow the JSON parser's stack
        raise FrameError(BAD_FRAME, "frame is not valid JSON or MessagePack") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise FrameError(BAD_FRAME, "a frame is an object with a string \"type\"")
    return obj


def text_field(frame: dict[str, Any], key: str, *, limit: int = MAX_FIELD_CHARS, required: bool = False,
               one_line: bool = False) -> str | None:
    """A string field, cleaned of unpaired surrogates and control characters; None if absent.
    ``one_line`` (names, addresses) also drops every other non-printable character."""
    value = frame.get(key)
    if value is None:
        if required:
            raise FrameError(BAD_FRAME, f"\"{key}\" is required")
        return None
    if not isinstance(value, str):
        raise FrameError(BAD_FRAME, f"\"{key}\" must be a string")
    value = clean_text(value)
    if len(value) > limit:
        code = TOO_LONG if key == "text" else BAD_FRAME
        raise FrameError(code, f"\"{key}\" is longer than {limit} characters")
    return clean_line(value) if one_line else value


def clean_text(value: str) -> str:
    """Drop what cannot be stored or shown safely: unpaired surrogates, NULs and C0 controls
    other than newline and tab. Everything else (RTL marks, emoji) is kept; clients render
    text as text, never as HTML."""
    if value.isprintable():
        return value
    value = value.encode("utf-8", "replace").decode("utf-8")
    return "".join(ch for ch in value if ch in "\n\t" or not (ord(ch) < 32 or ord(ch) == 127))


def clean_line(value: str) -> str:
    """One line for a name, an address or a subject: line breaks of any kind (CR, LF, NEL,
    U+2028/9) and other white space become one space, every other non-printable character
    (controls, format and bidi marks, unassigned code points) is dropped. A name ends up in
    mail headers, where the email library refuses a NEL outright, and on agents' screens,
    where a bidi override would disguise it. The zero-width (non-)joiners stay: Persian and
    Indic names and emoji sequences are spelt with them."""
    value = value.encode("utf-8", "replace").decode("utf-8")
    if not value.isprintable():
        value = "".join(ch if ch.isprintable() or ch in _JOINERS else " " if ch.isspace() or ch in "\u2028\u2029" else ""
                        for ch in value)
    return " ".join(value.split())


_JOINERS = "\u200c\u200d"


def bool_field(frame: dict[str, Any], key: str, default: bool = False) -> bool:
    value = frame.get(key, default)
    if not isinstance(value, bool):
        raise FrameError(BAD_FRAME, f"\"{key}\" must be true or false")
    return value


def int_field(frame: dict[str, Any], key: str, default: int = 0, lo: int = 0, hi: int = 2**53) -> int:
    value = frame.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise FrameError(BAD_FRAME, f"\"{key}\" must be a whole number from {lo} to {hi}")
    return value


def choice_field(frame: dict[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = frame.get(key)
    if value not in choices:
        raise FrameError(BAD_FRAME, f"\"{key}\" must be one of {', '.join(choices)}")
    return value
