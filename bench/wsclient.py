"""A lean RFC 6455 client on asyncio.Protocol, for the load generator only.

Why not the websockets client: the load generator has one core for thousands of sockets,
and a full client library costs several times the CPU per frame of this callback-based one,
which would make the load generator, not the server under test, the bottleneck of the
throughput scenario. It speaks exactly what the bench needs: one upgrade request (with an
optional subprotocol and cookie), masked client frames, unmasked server frames, answers to
ping and close. Incoming messages are handed to ``on_message(client, payload, binary)``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import struct
from typing import Callable

try:  # the websockets package ships a C masking routine; fall back to big-int XOR
    from websockets.speedups import apply_mask as _apply_mask
except ImportError:  # pragma: no cover
    _apply_mask = None

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_getrandbits = random.getrandbits


def _mask(payload: bytes, key: bytes) -> bytes:
    if _apply_mask is not None:
        return _apply_mask(payload, key)
    n = len(payload)
    stream = (key * ((n >> 2) + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    key = _getrandbits(32).to_bytes(4, "little")
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + key + _mask(payload, key)


class HandshakeError(Exception):
    """The server did not switch protocols (status line and a bit of the body in the message)."""


MessageHandler = Callable[["WSClient", bytes, bool], None]


class WSClient(asyncio.Protocol):
    """One client WebSocket. ``await WSClient.connect(...)`` returns it open."""

    def __init__(self, request: bytes, key: str, on_message: MessageHandler | None):
        self.request = request
        self.key = key
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future = asyncio.get_running_loop().create_future()
        self.subprotocol: str | None = None
        self.close_code: int | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.fragments: list[bytes] = []
        self.fragment_binary = False
        self.user: object = None  # the load generator's state for this socket

    # --- opening -----------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        path: str,
        on_message: MessageHandler | None = None,
        subprotocols: tuple[str, ...] = (),
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
        local_host: str | None = None,
    ) -> "WSClient":
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if subprotocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        loop = asyncio.get_running_loop()
        client = cls(request, key, on_message)
        # local_host: a source address of its own (127.0.0.x), for more sockets to one port
        # than one address has ephemeral ports
        local = (local_host, 0) if local_host else None
        await asyncio.wait_for(loop.create_connection(lambda: client, host, port, local_addr=local), timeout)
        try:
            await asyncio.wait_for(client.opened, timeout)
        except BaseException:
            client.abort()
            raise
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def _finish_handshake(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > 65536:
                self._fail(HandshakeError("oversized handshake response"))
            return False
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[: end + 4]
        status, *header_lines = head.split("\r\n")
        if " 101 " not in status + " ":
            self._fail(HandshakeError(f"{status} {bytes(self.buf[:200])!r}"))
            return False
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1(self.key.encode() + _GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            self._fail(HandshakeError("bad Sec-WebSocket-Accept"))
            return False
        self.subprotocol = headers.get("sec-websocket-protocol") or None
        self.upgraded = True
        if not self.opened.done():
            self.opened.set_result(self)
        return True

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        self.abort()

    # --- receiving -----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded and not self._finish_handshake():
            return
        pos, end = 0, len(buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n = b1 & 0x7F
            head = 2
            if n == 126:
                if end - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif n == 127:
                if end - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if b1 & 0x80:  # a masked server frame is a protocol error; we only read it
                head += 4
            if end - pos < head + n:
                break
            payload = bytes(buf[pos + head : pos + head + n])
            if b1 & 0x80:
                payload = _mask(payload, bytes(buf[pos + head - 4 : pos + head]))
            pos += head + n
            self._frame(b0 & 0x80, b0 & 0x0F, payload)
            if self.transport is None:
                return
        if pos:
            del buf[:pos]

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode in (OP_TEXT, OP_BINARY):
            if fin:
                if self.on_message is not None:
                    self.on_message(self, payload, opcode == OP_BINARY)
            else:
                self.fragments = [payload]
                self.fragment_binary = opcode == OP_BINARY
        elif opcode == OP_CONT:
            self.fragments.append(payload)
            if fin:
                whole, self.fragments = b"".join(self.fragments), []
                if self.on_message is not None:
                    self.on_message(self, whole, self.fragment_binary)
        elif opcode == OP_PING:
            self._write(encode_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            self._write(encode_frame(OP_CLOSE, payload[:2]))
            self.abort()

    # --- sending ---------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def send_text(self, text: str) -> None:
        self._write(encode_frame(OP_TEXT, text.encode()))

    def send_binary(self, data: bytes) -> None:
        self._write(encode_frame(OP_BINARY, data))

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def close(self, code: int = 1000) -> None:
        """Send a close frame and drop the connection (the bench does not wait for the echo)."""
        if self.is_open:
            self._write(encode_frame(OP_CLOSE, struct.pack("!H", code)))
            self.transport.close()  # type: ignore[union-attr]
        self.transport = None

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("connection closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)
