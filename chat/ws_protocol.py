"""The hub's WebSocket server protocol (RFC 6455), for uvicorn.Config(ws=...).

Why our own: a socket's life on uvicorn's websockets-sansio protocol cost about 0.4 ms of CPU
before the application did anything (the request head parsed a second time by the websockets
library after httptools had parsed it, a Headers object, a response built with a formatted
date, a generator-based frame parser and a Frame object per frame, getpeername and
getsockname asked again), which alone was most of issue 16's budget of 0.5 ms per `hello`; and
the relay pays the frame machinery on every message. Here the HTTP protocol
(chat/http_guard.py) hands the request it already parsed over (``upgrade``), the handshake
is checked and answered from those headers, and frames are parsed and written with plain
slicing and struct, unmasked by websockets' C helper. Per socket it keeps a few slots and
no buffer while idle (issue 17: under 25 KiB per idle visitor socket).

What it does is what uvicorn's protocol does for the ASGI application: the websocket scope,
``websocket.connect``/``receive``/``disconnect`` events, ``websocket.accept`` (with a
subprotocol and headers), ``websocket.send``, ``websocket.close`` (before the handshake: a
403), the denial response extension, keepalive pings with a pong deadline, reading paused
while the application has not taken what was received, writes waiting while the transport
is paused, and a 1012 close at server shutdown. No extension is offered (uvicorn's
per-message deflate is off in the hub anyway). Protocol errors close the connection with
the code RFC 6455 names: 1002 (unmasked client frame, reserved bits or opcodes, a bad
control frame or continuation), 1007 (text that is not UTF-8), 1009 (a message over
``ws_max_size``).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import http
import logging
import random
import struct
from typing import Any
from urllib.parse import unquote

import httptools
from uvicorn.protocols.utils import ClientDisconnected

from chat.frames import (CLOSE_INVALID_TEXT, CLOSE_PROTOCOL_ERROR, CLOSE_RESTART, CLOSE_TOO_BIG,
                         CLOSE_UNAVAILABLE)

try:  # websockets' C helper; the pure-Python one where it was not built
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

log = logging.getLogger("uvicorn.error")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
# Close codes a peer may send (RFC 6455 7.4; 1005, 1006 and 1015 are never on the wire).
_PEER_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})
ASGI_SCOPE_TYPE = "websocket"  # ASGI's, not one of our frame types (chat/frames.py)
_UNPACK_H = struct.Struct("!H").unpack_from
_UNPACK_Q = struct.Struct("!Q").unpack_from


class Flag:
    """asyncio.Event's set/clear/wait, holding a list of waiters only while some task
    waits (an asyncio.Event keeps a deque for its whole life)."""

    __slots__ = ("_value", "_waiters")

    def __init__(self, value: bool = False) -> None:
        self._value = value
        self._waiters: list[asyncio.Future] | None = None

    def set(self) -> None:
        if self._value:
            return
        self._value = True
        for fut in self._waiters or ():
            if not fut.done():
                fut.set_result(True)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        """Until the flag is set (at once if it is)."""
        if self._value:
            return True
        fut = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(fut)
        try:
            await fut
            return True
        finally:
            self._waiters.remove(fut)
            if not self._waiters:
                self._waiters = None


class Inbox:
    """An unbounded FIFO with asyncio.Queue's put_nowait/get/empty, its storage made
    only while it holds something or someone waits. The protocol puts each message received
    (and the disconnect), and pauses reading while the application has not taken them all,
    so it is nearly always empty."""

    __slots__ = ("_items", "_getters")

    def __init__(self) -> None:
        self._items: collections.deque[Any] | None = None
        self._getters: list[asyncio.Future] | None = None  # nearly always one: the handler

    def empty(self) -> bool:
        return not self._items

    def has_getters(self) -> bool:
        """Whether a reader waits (and would take the next item at once)."""
        return bool(self._getters)

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = collections.deque()
        self._items.append(item)
        self._wake_next()

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item

    async def get(self) -> Any:
        """The oldest item, waiting for one if need be (as asyncio.Queue.get, cancellation
        included: a getter cancelled after it was woken passes the wake-up on)."""
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                if self._getters is not None:
                    try:
                        self._getters.remove(getter)
                    except ValueError:
                        pass
                if self._items and not getter.cancelled():
                    self._wake_next()
                raise
        return self.get_nowait()

    def _wake_next(self) -> None:
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                break
        if not getters:
            self._getters = None


def frame_header(opcode: int, n: int) -> bytes:
    """A server frame's header: FIN, the opcode and the length (a server's frames are not masked)."""
    first = 0x80 | opcode
    if n < 126:
        return bytes((first, n))
    if n < 65536:
        return struct.pack("!BBH", first, 126, n)
    return struct.pack("!BBQ", first, 127, n)


def accept_key(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def _key_ok(key: bytes) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        return False


def http_response(status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> bytes:
    """An HTTP/1.1 response that ends the connection (a refused handshake or a denial)."""
    phrase = http.HTTPStatus(status).phrase if status in http.HTTPStatus._value2member_map_ else ""
    names = {name.lower() for name, _ in headers}
    extra = []
    if b"content-type" not in names:
        extra.append((b"content-type", b"text/plain; charset=utf-8"))
    if b"content-length" not in names:
        extra.append((b"content-length", str(len(body)).encode()))
    if b"connection" not in names:
        extra.append((b"connection", b"close"))
    lines = [f"HTTP/1.1 {status} {phrase}\r\n".encode()]
    lines += [name + b": " + value + b"\r\n" for name, value in headers + extra]
    return b"".join(lines) + b"\r\n" + body


class LeanWebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection, from the HTTP protocol's hand-over to the close (see the
    module's docstring)."""

    __slots__ = (
        "config", "app", "loop", "app_state", "connections", "tasks", "default_headers", "max_size",
        "ping_interval", "ping_timeout", "close_timeout",
        "transport", "server", "client", "scope", "queue", "writable", "_key",
        "handshake_complete", "close_sent", "disconnected", "read_paused", "initial_response",
        "_buf", "_need", "_frags", "_frag_op", "_frag_size",
        "close_timer", "ping_timer", "pong_timer", "pending_ping", "ping_sent_at", "last_ping_rtt",
    )

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        if not config.loaded:
            config.load()  # pragma: no cover
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.app_state = app_state
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.default_headers = server_state.default_headers
        self.max_size = config.ws_max_size
        self.ping_interval = config.ws_ping_interval
        self.ping_timeout = config.ws_ping_timeout
        self.close_timeout = 10.0
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server = self.client = None
        self.scope: dict[str, Any] | None = None
        self.queue = Inbox()
        self.writable = Flag(True)
        self._key = b""
        self.handshake_complete = self.close_sent = self.disconnected = self.read_paused = False
        self.initial_response: tuple[int, list[tuple[bytes, bytes]], bytes] | None = None
        self._buf: bytearray | None = None  # an incomplete frame, only until the rest came
        self._need = 0  # bytes _buf must hold before it is worth parsing again
        self._frags: bytearray | None = None  # a fragmented message so far, only while it comes
        self._frag_op = self._frag_size = 0
        self.close_timer = self.ping_timer = self.pong_timer = None
        self.pending_ping: bytes | None = None
        self.ping_sent_at = self.last_ping_rtt = 0.0

    # --- the hand-over from HTTP -----------------------------------------------------

    def upgrade(self, transport: asyncio.Transport, http_scope: dict[str, Any], url: bytes) -> None:
        """Take the connection over from the HTTP protocol, which parsed the request head:
        check the handshake (RFC 6455 4.2.1) and start the application, or refuse it."""
        self.transport = transport
        self.connections.add(self)
        self.server, self.client = http_scope.get("server"), http_scope.get("client")
        headers: list[tuple[bytes, bytes]] = http_scope["headers"]
        key = version = None
        subprotocols: list[str] = []
        for name, value in headers:
            if name == b"sec-websocket-key":
                key = value if key is None else b""  # sent twice: refused below
            elif name == b"sec-websocket-version":
                version = value
            elif name == b"sec-websocket-protocol":
                subprotocols += [token.strip() for token in value.decode("latin-1").split(",") if token.strip()]
        problem = None
        if http_scope.get("method") != "GET":
            problem = (405, "the WebSocket handshake must be a GET", [(b"allow", b"GET")])
        elif http_scope.get("http_version", "1.1") != "1.1":
            problem = (400, "the WebSocket handshake needs HTTP/1.1", [])
        elif version is None or version.strip() != b"13":
            problem = (426, "unsupported Sec-WebSocket-Version: this server speaks 13", [(b"sec-websocket-version", b"13")])
        elif not key or not _key_ok(key.strip()):
            problem = (400, "missing or invalid Sec-WebSocket-Key", [])
        else:
            try:  # a path, in ASCII (an absolute URL with no path, or raw UTF-8, is refused)
                parsed = httptools.parse_url(url)
                raw_path = parsed.path
                path = raw_path.decode("ascii")
            except (httptools.HttpParserInvalidURLError, AttributeError, UnicodeDecodeError):
                problem = (400, "the request target must be a path", [])
        if problem is not None:
            status, text, extra = problem
            self.close_sent = self.handshake_complete = True
            transport.write(http_response(status, extra, f"Failed to open a WebSocket connection: {text}.\n".encode()))
            self._shut()
            return
        self._key = key.strip()  # type: ignore[union-attr]
        if "%" in path:
            path = unquote(path)
        root_path = self.config.root_path
        self.scope = {
            "type": ASGI_SCOPE_TYPE,
            "asgi": {"version": self.config.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if http_scope.get("scheme") == "https" else "ws",
            "server": self.server,
            "client": self.client,
            "root_path": root_path,
            "path": root_path + path,
            "raw_path": root_path.encode("ascii") + raw_path,
            "query_string": parsed.query or b"",
            "headers": headers,
            "subprotocols": subprotocols,
            "state": http_scope["state"],
            "extensions": {"websocket.http.response": {}},
        }
        self.queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    # --- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # pragma: no cover
        raise RuntimeError("LeanWebSocketProtocol takes connections over from chat.http_guard's HTTP protocol only")

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_keepalive()
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1005 if self.handshake_complete else 1006})
        self.connections.discard(self)
        self.handshake_complete = self.disconnected = True
        self._buf = self._frags = None
        # A send waiting for the transport to take writes would wait for ever: a lost
        # transport never resumes writing.
        self.writable.set()
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None
        if exc is None:
            self.transport.close()

    def eof_received(self) -> None:
        pass

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def shutdown(self) -> None:
        """The server stops (uvicorn calls this on every connection): 1012, service restart."""
        self.stop_keepalive()
        if self.close_sent:
            if self.close_timer is not None:
                self.close_timer.cancel()
                self.close_timer = None
            self._shut()
            return
        if self.handshake_complete:
            self.queue.put_nowait({"type": "websocket.disconnect", "code": CLOSE_RESTART})
            self._write_close(CLOSE_RESTART, b"")
        else:
            self.send_500_response()
        self.close_sent = True
        self._shut()

    # --- receiving -----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.close_sent and self.disconnected:
            return
        buf = self._buf
        if buf is not None:  # the rest of a frame: gather it, and parse once it is all here
            buf += data
            if len(buf) < self._need:
                return
            data, self._buf = bytes(buf), None
        n = len(data)
        pos = 0
        need = 0
        while pos < n:
            if n - pos < 2:
                need = 2
                break
            b0, b1 = data[pos], data[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    need = 4
                    break
                length = _UNPACK_H(data, pos + 2)[0]
                head = 4
            elif length == 127:
                if n - pos < 10:
                    need = 10
                    break
                length = _UNPACK_Q(data, pos + 2)[0]
                head = 10
            if not b1 & 0x80:
                return self.fail(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
            if b0 & 0x70:
                return self.fail(CLOSE_PROTOCOL_ERROR, "reserved bits must be 0")
            opcode = b0 & 0x0F
            if opcode >= 8:
                if length > 125 or not b0 & 0x80:
                    return self.fail(CLOSE_PROTOCOL_ERROR, "control frames are short and unfragmented")
            elif length + self._frag_size > self.max_size:
                return self.fail(CLOSE_TOO_BIG, f"message over {self.max_size} bytes")
            end = pos + head + 4 + length
            if end > n:
                need = end - pos
                break
            start = pos + head + 4
            payload = apply_mask(data[start:end], data[start - 4:start]) if length else b""
            pos = end
            if not self._frame(b0 & 0x80, opcode, payload):
                return
        if pos < n:  # at most one frame (64 KiB and its header), kept until the rest comes
            self._buf, self._need = bytearray(data[pos:]), need

    def _frame(self, fin: int, opcode: int, payload: bytes) -> bool:
        """One frame received; False once the connection is closing (nothing more is read)."""
        if opcode == OP_TEXT or opcode == OP_BINARY:
            if self._frags is not None:
                return self.fail(CLOSE_PROTOCOL_ERROR, "a new message began before the last one ended")
            if not fin:
                # One buffer for the whole message, never more than max_size: a list of
                # fragments would grow with every empty one.
                self._frags, self._frag_op, self._frag_size = bytearray(payload), opcode, len(payload)
                return True
            return self._message(opcode, payload)
        if opcode == OP_CONT:
            if self._frags is None:
                return self.fail(CLOSE_PROTOCOL_ERROR, "a continuation frame with no message to continue")
            self._frags += payload
            self._frag_size += len(payload)
            if not fin:
                return True
            message, op = bytes(self._frags), self._frag_op
            self._frags, self._frag_size = None, 0
            return self._message(op, message)
        if opcode == OP_PING:
            # Not while the transport is paused: a client that pings and never reads would
            # have its pongs pile up in our buffer.
            if not self.close_sent and self.writable._value:
                self.transport.write(frame_header(OP_PONG, len(payload)) + payload)
            return True
        if opcode == OP_PONG:
            self._pong(payload)
            return True
        if opcode == OP_CLOSE:
            self._close_received(payload)
            return False
        return self.fail(CLOSE_PROTOCOL_ERROR, f"reserved opcode {opcode}")

    def _message(self, opcode: int, payload: bytes) -> bool:
        if self.close_sent:
            # Past our close: read on until the peer's close reply comes, but hand nothing on.
            return True
        if opcode == OP_TEXT:
            try:
                event = {"type": "websocket.receive", "text": payload.decode()}
            except UnicodeDecodeError:
                return self.fail(CLOSE_INVALID_TEXT, "text frames must be UTF-8")
        else:
            event = {"type": "websocket.receive", "bytes": payload}
        # Reading pauses only while the application is busy with an earlier message: pausing
        # and resuming around every message (as uvicorn does) is two epoll calls per frame.
        reader_waits = self.queue.has_getters()
        self.queue.put_nowait(event)
        if not reader_waits and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
        return True

    def _close_received(self, payload: bytes) -> None:
        if self.close_sent:
            # The peer answered our close: the closing handshake is complete.
            if self.close_timer is not None:
                self.close_timer.cancel()
                self.close_timer = None
            self._shut()
            return
        code, reason = 1005, ""
        if len(payload) == 1:
            self.fail(CLOSE_PROTOCOL_ERROR, "a close frame's code has two bytes")
            return
        if len(payload) >= 2:
            code = _UNPACK_H(payload)[0]
            if code not in _PEER_CLOSE_CODES and not 3000 <= code < 5000:
                self.fail(CLOSE_PROTOCOL_ERROR, f"close code {code} is not one a peer may send")
                return
            try:
                reason = payload[2:].decode()
            except UnicodeDecodeError:
                self.fail(CLOSE_INVALID_TEXT, "a close reason must be UTF-8")
                return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.close_sent = True
        self.stop_keepalive()
        self.transport.write(frame_header(OP_CLOSE, len(payload)) + payload)  # the echo RFC 6455 asks for
        self._shut()

    def _shut(self) -> None:
        """Close the transport once what is buffered went out, and abort it if that has not
        happened within close_timeout: a peer that stops reading (a zero window) must not
        keep its connection, its buffer and its place among the connections for ever."""
        self.transport.close()
        if self.close_timer is None and not self.disconnected:
            self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)

    def fail(self, code: int, reason: str) -> bool:
        """A protocol error: close with its code, tell the application, read nothing more."""
        self._buf = self._frags = None
        if not self.close_sent:
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
            self._write_close(code, reason.encode())
            self.close_sent = True
        self.stop_keepalive()
        self._shut()
        return False

    # --- keepalive -----------------------------------------------------------------

    def start_keepalive(self) -> None:
        if self.ping_interval:
            self.schedule_ping()

    def stop_keepalive(self) -> None:
        if self.ping_timer is not None:
            self.ping_timer.cancel()
            self.ping_timer = None
        if self.pong_timer is not None:
            self.pong_timer.cancel()
            self.pong_timer = None
        self.pending_ping = None

    def schedule_ping(self) -> None:
        self.ping_timer = self.loop.call_later(max(0.0, self.ping_interval - self.last_ping_rtt), self.send_keepalive_ping)

    def send_keepalive_ping(self) -> None:
        self.ping_timer = None
        if self.close_sent or self.transport.is_closing():
            return
        # A random payload tells the answer to this ping from a stale or unsolicited pong.
        self.pending_ping = struct.pack("!I", random.getrandbits(32))
        self.ping_sent_at = self.loop.time()
        self.transport.write(frame_header(OP_PING, 4) + self.pending_ping)
        if self.ping_timeout is not None:
            self.pong_timer = self.loop.call_later(self.ping_timeout, self.keepalive_timeout)
        else:
            self.schedule_ping()

    def _pong(self, payload: bytes) -> None:
        if self.pending_ping is None or payload != self.pending_ping:
            return
        self.last_ping_rtt = self.loop.time() - self.ping_sent_at
        self.pending_ping = None
        if self.pong_timer is not None:
            self.pong_timer.cancel()
            self.pong_timer = None
            self.schedule_ping()

    def keepalive_timeout(self) -> None:
        self.pong_timer = None
        self.pending_ping = None
        if self.close_sent or self.transport.is_closing():
            return
        self.fail(CLOSE_UNAVAILABLE, "keepalive ping timeout")

    # --- the application -----------------------------------------------------------

    async def run_asgi(self) -> None:
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            log.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if not self.handshake_complete:
                log.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                log.error("ASGI callable should return None, but returned '%s'.", result)
        if self.close_timer is None:
            self._shut()

    def send_500_response(self) -> None:
        if self.initial_response is not None or self.handshake_complete:
            return
        self.handshake_complete = self.close_sent = True
        self.transport.write(http_response(500, [], b"Internal Server Error\n"))

    async def receive(self) -> dict[str, Any]:
        message = await self.queue.get()
        if self.read_paused and self.queue.empty():
            self.read_paused = False
            self.transport.resume_reading()
        return message

    async def send(self, message: dict[str, Any]) -> None:
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        kind = message["type"]
        if not self.handshake_complete and self.initial_response is None:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self.queue.put_nowait({"type": "websocket.disconnect", "code": 1006})
                self.close_sent = self.handshake_complete = True
                self.transport.write(http_response(403, []))
                self._log_line("403")
                self._shut()
            elif kind == "websocket.http.response.start":
                status = message["status"]
                if not 100 <= status < 600:
                    raise RuntimeError(f"Invalid HTTP status code '{status}' in response.")
                self.initial_response = (status, list(message.get("headers", [])), b"")
            else:
                raise RuntimeError("Expected ASGI message 'websocket.accept', 'websocket.close' "
                                   f"or 'websocket.http.response.start' but got '{kind}'.")
        elif self.initial_response is not None:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"Expected ASGI message 'websocket.http.response.body' but got '{kind}'.")
            status, headers, body = self.initial_response
            body += message.get("body", b"")
            self.initial_response = (status, headers, body)
            if not message.get("more_body", False):
                self.queue.put_nowait({"type": "websocket.disconnect", "code": 1006})
                self.close_sent = self.handshake_complete = True
                self.transport.write(http_response(status, headers, body))
                self._shut()
        elif self.close_sent:
            # Closed by us (a protocol error, the keepalive, shutdown) or by the peer.
            raise ClientDisconnected()
        elif kind == "websocket.send":
            data = message.get("bytes")
            if data is not None:
                self._write_frame(OP_BINARY, data)
            else:
                text = message.get("text")
                if text is not None:
                    self._write_frame(OP_TEXT, text.encode())
        elif kind == "websocket.close":
            if not self.transport.is_closing():
                code = message.get("code", 1000)
                reason = message.get("reason", "") or ""
                self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
                self._write_close(code, reason.encode())
                self.close_sent = True
                self.stop_keepalive()
                if self.read_paused:
                    self.read_paused = False
                    self.transport.resume_reading()
                # The peer has close_timeout to answer; then the connection is cut, whatever
                # is still buffered for it.
                self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)
        else:
            raise RuntimeError(f"Expected ASGI message 'websocket.send' or 'websocket.close', but got '{kind}'.")

    def _accept(self, message: dict[str, Any]) -> None:
        if self.transport.is_closing():
            return
        lines = [b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ",
                 accept_key(self._key), b"\r\n"]
        self._key = b""
        subprotocol = message.get("subprotocol")
        if subprotocol:
            lines += [b"sec-websocket-protocol: ", subprotocol.encode("latin-1"), b"\r\n"]
        for name, value in (*self.default_headers, *message.get("headers", ())):
            lines += [name, b": ", value, b"\r\n"]
        lines.append(b"\r\n")
        self.handshake_complete = True
        self.transport.write(b"".join(lines))
        self.start_keepalive()
        self._log_line("[accepted]")

    def _log_line(self, outcome: str) -> None:
        # uvicorn's line per socket, kept where the logger lets it through (`livechat serve`
        # quiets it at info level; chat/log_privacy.py scrubs the address out of it).
        if log.isEnabledFor(logging.INFO):
            client = "%s:%d - " % self.client if self.client else ""
            log.info('%s"WebSocket %s" %s', client, self.scope["path"] if self.scope else "", outcome)

    def _write_frame(self, opcode: int, data: bytes) -> None:
        n = len(data)
        if n < 4096:
            self.transport.write(frame_header(opcode, n) + data)
        else:  # no copy of a long payload
            self.transport.writelines((frame_header(opcode, n), data))

    def _write_close(self, code: int, reason: bytes) -> None:
        if code in (1005, 1006, 1015) or not 1000 <= code < 5000:  # never on the wire (RFC 6455 7.4)
            code = CLOSE_UNAVAILABLE
        # At most 123 bytes, not cut inside a character: the reason must stay UTF-8.
        reason = reason[:123].decode("utf-8", "ignore").encode() if len(reason) > 123 else reason
        payload = struct.pack("!H", code) + reason
        self.transport.write(frame_header(OP_CLOSE, len(payload)) + payload)

    def _writes_now(self) -> bool:
        """A data frame may be written at once, outside ``send``: the socket is open and the
        transport takes writes (not paused for a slow reader)."""
        return (self.writable._value and not self.close_sent and self.handshake_complete and not self.disconnected
                and self.initial_response is None)

    def send_frames_now(self, data: list[bytes], binary: bool) -> bool:
        """send_frame_now for several frames, in one write."""
        if not self._writes_now():
            return False
        opcode = OP_BINARY if binary else OP_TEXT
        self.transport.write(b"".join(frame_header(opcode, len(d)) + d for d in data))
        return True

    def send_frame_now(self, data: bytes, binary: bool) -> bool:
        """Write one data frame now, as ``send`` does for a ``websocket.send`` message but
        without the ASGI message and starlette's awaits around it: a place in line is a few
        dozen bytes, sent to every waiting socket when the line moves. False when ``send``
        must do it: the transport paused for a slow reader, the socket not open."""
        if not self._writes_now():
            return False
        self._write_frame(OP_BINARY if binary else OP_TEXT, data)
        return True
