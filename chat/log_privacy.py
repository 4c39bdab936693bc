"""No client address in any log line: docs/security.md promises that no IP address is kept,
and a log file is kept.

The addresses do not come from our code alone. uvicorn starts its own lines with the client
('198.51.100.20:0 - "WebSocket /ws/visitor" [accepted]', at info level, whatever access_log
says; "403" and other status lines; trace-level connection lines), the websockets library
logs every request header at debug level (X-Forwarded-For among them), and an exception's
message may quote an address. Rather than chase each of those lines, every log record this
process makes is scrubbed where it is made (a log record factory, so no logger, handler or
formatter is left out): each IP address in it becomes ``ip-`` and a short salted hash. The
salt is random per process and never written anywhere, so the hash still tells the lines of
one client apart from another's without being reversible (2**32 IPv4 addresses are quickly
tried against a known salt, not against an unknown one). Loopback and unspecified addresses
(127.0.0.1, ::1, 0.0.0.0) are this machine, never a visitor, and stay readable: "Uvicorn
running on http://127.0.0.1:8000".
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import secrets
from collections.abc import Mapping
from typing import Any, Callable

# Candidates only: each is checked with ipaddress before it is replaced.
_IPV4 = re.compile(r"(?<![0-9])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9])")
_IPV6 = re.compile(r"(?<![0-9A-Za-z:])[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:]*:[0-9A-Fa-f]{0,4}(?![0-9A-Za-z:])")

_SALT = secrets.token_bytes(16)
_traceback_formatter = logging.Formatter()


def _pseudonym(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return "ip-" + hashlib.sha256(_SALT + address.packed).hexdigest()[:8]


def _keeps(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_loopback or address.is_unspecified


def _replace_v4(match: re.Match[str]) -> str:
    try:
        address = ipaddress.IPv4Address(match.group())
    except ValueError:  # 999.1.2.3, or a leading zero: not an address
        return match.group()
    return match.group() if _keeps(address) else _pseudonym(address)


def _replace_v6(match: re.Match[str]) -> str:
    text = match.group()
    cut = text.rfind(":")  # uvicorn writes "host:port" without brackets: "1:2:3:4:5:6:7:8:443"
    for candidate, port in ((text, ""), (text[:cut], text[cut:])):
        try:
            address = ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        return text if _keeps(address) else _pseudonym(address) + port
    return text


def scrub(text: str) -> str:
    """The text with every IP address (but loopback and unspecified ones) replaced by its pseudonym."""
    if "." in text:
        text = _IPV4.sub(_replace_v4, text)
    if text.count(":") >= 2:
        text = _IPV6.sub(_replace_v6, text)
    return text


def _scrub_value(value: Any) -> Any:
    return scrub(value) if isinstance(value, str) else value


def scrub_record(record: logging.LogRecord) -> None:
    """Scrub one record in place. Its template and string arguments are scrubbed one by one,
    so formatters that read the arguments (uvicorn's access log) keep working; a message that
    still shows an address once put together (an address inside a tuple or an exception
    argument) is replaced by its scrubbed text. Tracebacks are rendered now and scrubbed."""
    if isinstance(record.msg, str):
        record.msg = scrub(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_scrub_value(a) for a in record.args)
    elif isinstance(record.args, Mapping):
        record.args = {k: _scrub_value(v) for k, v in record.args.items()}
    if isinstance(record.__dict__.get("color_message"), str):
        record.color_message = scrub(record.color_message)
    try:
        message = record.getMessage()
    except Exception:  # a broken format: logging reports it when the record is emitted
        return
    clean = scrub(message)
    if clean != message:
        record.msg, record.args = clean, ()
        if "color_message" in record.__dict__:
            record.color_message = clean
    if record.exc_info and not record.exc_text:
        record.exc_text = scrub(_traceback_formatter.formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)


def install() -> None:
    """Scrub every log record of this process from now on (once: a second call changes nothing)."""
    make: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()
    if getattr(make, "scrubs_addresses", False):
        return

    def record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        scrub_record(record)
        return record

    record_factory.scrubs_addresses = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record_factory)


# The WebSocket protocol's debug trace: every header ("< cookie: lc_session=…") and every frame
# ("< TEXT '{"type": "message", "text": …}'") of every socket. A session cookie is a
# credential and a message is what a customer wrote: neither belongs in a log, whatever level.
_WIRE_TRACE = ("< ", "> ", "= ", "% ", "x ", "! ", "? ")
_WIRE_LOGGERS = ("uvicorn.error", "websockets", "websockets.server", "websockets.protocol", "websockets.client")


class _NoWireTrace(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG or not str(record.msg).startswith(_WIRE_TRACE)


def drop_wire_traces() -> None:
    """Keep the WebSocket library's header and frame trace out of every log (call once the
    server's logging is configured: uvicorn sets its loggers up when its Config is made)."""
    for name in _WIRE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoWireTrace) for f in logger.filters):
            logger.addFilter(_NoWireTrace())
