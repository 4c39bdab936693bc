"""Bare baseline: the least a relay on our stack can do (uvicorn + Starlette + websockets +
Redis pub/sub), with no application logic and no persistence.

What it does per message, and nothing more: read the frame, decode it (JSON text or
MessagePack binary, whichever the client sent) to find its room, PUBLISH it to the room's
Redis channel, and, from the one pub/sub reader task, send it on to every other socket of
the room in the same frame type. Delivery goes through Redis even when both sockets are on
this process, like the livechat hub, so the two differ only by the hub's work.

Protocol (bench only): first frame ``{"join": ["room", ...]}``; then
``{"room": "...", "text": "..."}`` frames, delivered verbatim to the room's other members.

    python -m bench.baselines.bare_relay --port 8100 --redis-url unix:///path/redis.sock
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json

import msgpack
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from chat.store import redis_client

CHANNEL_PREFIX = b"bare:"


class Member:
    __slots__ = ("id", "ws", "binary")

    def __init__(self, member_id: bytes, ws: WebSocket, binary: bool):
        self.id, self.ws, self.binary = member_id, ws, binary


class Relay:
    """Rooms of local sockets, one Redis pub/sub connection, one reader task."""

    def __init__(self, redis_url: str):
        # The hub's own Redis client (chat.store.redis_client: its pool kind, size and timeouts),
        # so that the two differ only by what they do with it.
        self.redis = redis_client(redis_url)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.rooms: dict[bytes, dict[bytes, Member]] = {}
        self.ids = itertools.count(1)
        self.reader: asyncio.Task | None = None

    async def start(self) -> None:
        await self.pubsub.subscribe(CHANNEL_PREFIX + b"-")  # so the reader has a connection
        self.reader = asyncio.create_task(self.read())

    async def stop(self) -> None:
        if self.reader:
            self.reader.cancel()
        await self.pubsub.aclose()
        await self.redis.aclose()

    async def read(self) -> None:
        while True:
            msg = await self.pubsub.get_message(timeout=None)
            if msg is None or msg["type"] != "message":
                continue
            sender, _, frame = msg["data"].partition(b"|")
            members = self.rooms.get(msg["channel"])
            if not members:
                continue
            for member in list(members.values()):
                if member.id == sender:
                    continue
                try:
                    if member.binary:
                        await member.ws.send_bytes(frame)
                    else:
                        await member.ws.send_text(frame.decode())
                except Exception:
                    pass

    async def join(self, room: bytes, member: Member) -> None:
        channel = CHANNEL_PREFIX + room
        members = self.rooms.setdefault(channel, {})
        if not members:
            await self.pubsub.subscribe(channel)
        members[member.id] = member

    async def leave(self, member: Member, rooms: list[bytes]) -> None:
        for room in rooms:
            channel = CHANNEL_PREFIX + room
            members = self.rooms.get(channel)
            if members is not None:
                members.pop(member.id, None)
                if not members:
                    del self.rooms[channel]
                    await self.pubsub.unsubscribe(channel)

    async def socket(self, ws: WebSocket) -> None:
        binary = "livechat.msgpack" in ws.scope.get("subprotocols", [])
        await ws.accept(subprotocol="livechat.msgpack" if binary else None)
        member = Member(str(next(self.ids)).encode(), ws, binary)
        rooms: list[bytes] = []
        publish = self.redis.publish
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                raw = message.get("bytes")
                if raw is not None:
                    frame = msgpack.unpackb(raw)
                else:
                    raw = message["text"].encode()
                    frame = json.loads(raw)
                room = frame.get("room")
                if room is not None:
                    await publish(CHANNEL_PREFIX + room.encode(), member.id + b"|" + raw)
                elif "join" in frame:
                    for name in frame["join"]:
                        rooms.append(name.encode())
                        await self.join(name.encode(), member)
        except WebSocketDisconnect:
            pass
        finally:
            await self.leave(member, rooms)


def build_app(redis_url: str) -> Starlette:
    relay = Relay(redis_url)

    async def healthz(request):
        return PlainTextResponse("ok")

    async def lifespan(app):
        await relay.start()
        yield
        await relay.stop()

    from contextlib import asynccontextmanager

    return Starlette(
        routes=[Route("/healthz", healthz), WebSocketRoute("/ws", relay.socket)],
        lifespan=asynccontextmanager(lifespan),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    # The same server settings as `livechat serve` (chat/cli.py): sans-I/O websockets, no
    # per-message compression, 64 KiB frames, 20 s pings, uvloop and httptools where present.
    uvicorn.run(build_app(args.redis_url), host=args.host, port=args.port, log_level="warning", backlog=4096,
                ws="websockets-sansio", ws_max_size=65536, ws_per_message_deflate=False,
                ws_ping_interval=20.0, ws_ping_timeout=20.0, loop="auto", http="auto", access_log=False)


if __name__ == "__main__":
    main()
