"""The wire format of docs/protocol.md: frame types, limits, and JSON / MessagePack coding.

Inbound frames are validated here so that the socket handlers only see well-formed dicts.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack

MSGPACK_SUBPROTOCOL = "livechat.msgpack"
MAX_FRAME_BYTES = 64 * 1024
MAX_TEXT_CHARS = 4000
MAX_FIELD_CHARS = 500

# error codes
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


# ticket frames on the agent socket (docs/protocol.md 4.1, 4.2)
TICKET_CHANGED = "ticket_changed"  # hub -> agent: a ticket was made or changed; fetch it again
TICKET_VIEWING = "ticket_viewing"  # agent -> hub: I have this ticket open (and am or am not replying)
TICKET_VIEWERS = "ticket_viewers"  # hub -> agents: who has a ticket open now
TICKET_VIEWERS_SHOWN = 20  # viewers listed in one ticket_viewers frame

# offline reasons besides no_agents / closed_hours (docs/protocol.md lists them all)
OFFLINE_BUSY = "busy"  # the desk holds [limits] max_waiting_chats already: leave a message

# close codes
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_RESTART = 1012
CLOSE_SLOW = 1013  # the client stopped reading; reconnect and resume from last_seq


class FrameError(Exception):
    """A refused inbound frame: answered with an error frame, the socket stays open."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def client_id_of(frame: dict[str, Any]) -> str | None:
    """The client_id of a frame, if it carries a usable one (echoed in errors that refuse it)."""
    value = frame.get("client_id")
    return value[:64] if isinstance(value, str) and value else None


def error(code: str, message: str, refused: dict[str, Any] | None = None) -> dict[str, Any]:
    """An error frame. One that refuses an inbound frame names it as its sender knows it: its
    type (``refused``), and its ``chat_id`` and ``client_id`` where it had them, so that the
    client can undo what it assumed on sending (a message shown as sending, a close or a
    transfer it waits for)."""
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if refused is not None:
        frame["refused"] = refused["type"][:40]
        chat_id = refused.get("chat_id")
        if isinstance(chat_id, str) and chat_id:
            frame["chat_id"] = chat_id[:64]
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
