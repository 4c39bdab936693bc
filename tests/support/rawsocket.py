"""A WebSocket client on a bare TCP socket, for the fault and hostile-input tests: it can send
what no library would (invalid UTF-8, oversized frames, floods) and stop reading on purpose."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import socket
import struct
from typing import Any

import msgpack

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class RawSocket:
    """A WebSocket client on a bare TCP socket (RFC 6455 framing written by hand)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sock: socket.socket):
        self.reader, self.writer, self.sock = reader, writer, sock
        self.frames: list[tuple[int, bytes]] = []

    @classmethod
    async def connect(cls, port: int, path: str, headers: dict[str, str] | None = None,
                      rcvbuf: int | None = None, read_limit: int = 2**16) -> "RawSocket":
        """Open the socket and do the opening handshake. A small ``rcvbuf`` and ``read_limit``
        make a client whose buffers fill fast once it stops reading."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # A small window and a small segment size: on loopback (64 KB segments) the
            # server's kernel would otherwise buffer megabytes for a client that reads nothing.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=read_limit)
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if not status.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise ConnectionError(status.split(b"\r\n", 1)[0].decode())
        return cls(reader, writer, sock)

    def frame_bytes(self, opcode: int, payload: bytes, fin: bool = True) -> bytes:
        mask = secrets.token_bytes(4)
        head = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if n < 4096 else _xor(payload, mask)
        return head + mask + masked

    async def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        self.writer.write(self.frame_bytes(opcode, payload, fin))
        await self.writer.drain()

    async def send_json(self, **frame: Any) -> None:
        await self.send_frame(OP_TEXT, json.dumps(frame).encode())

    async def send_msgpack(self, **frame: Any) -> None:
        await self.send_frame(OP_BINARY, msgpack.packb(frame))

    async def recv_frame(self, timeout: float = 10.0) -> tuple[int, bytes]:
        async def read() -> tuple[int, bytes]:
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            return b0 & 0x0F, await self.reader.readexactly(n)

        frame = await asyncio.wait_for(read(), timeout)
        self.frames.append(frame)
        return frame

    async def recv_json(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next data frame decoded (control frames are skipped)."""
        while True:
            opcode, payload = await self.recv_frame(timeout)
            if opcode == OP_TEXT:
                return json.loads(payload)
            if opcode == OP_BINARY:
                return msgpack.unpackb(payload)
            if opcode == OP_CLOSE:
                raise ConnectionError(f"closed with {close_code_of(payload)}")

    async def expect(self, kind: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        while True:
            frame = await self.recv_json(timeout)
            if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
                return frame

    async def close_code(self, timeout: float = 15.0) -> int | None:
        """Read (and drop) everything until the server's close frame; its code, or None at EOF."""
        try:
            while True:
                opcode, payload = await self.recv_frame(timeout)
                if opcode == OP_CLOSE:
                    return close_code_of(payload)
        except asyncio.IncompleteReadError:
            return None

    def data_frames(self) -> list[dict[str, Any]]:
        out = []
        for opcode, payload in self.frames:
            if opcode == OP_TEXT:
                out.append(json.loads(payload))
            elif opcode == OP_BINARY:
                out.append(msgpack.unpackb(payload))
        return out

    def abort(self) -> None:
        self.writer.transport.abort()


def _xor(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


def close_code_of(payload: bytes) -> int | None:
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


async def raw_visitor(hub, lang: str, address: str | None) -> RawSocket:
    """A visitor on a bare socket that has said hello, from this client address (X-Forwarded-For)
    unless None (then from loopback)."""
    raw = await RawSocket.connect(hub.port, "/ws/visitor", {"X-Forwarded-For": address} if address else None)
    await raw.send_json(type="hello", lang=lang)
    return raw

