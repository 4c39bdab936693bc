"""Peer: the room relay a Python team would write with python-socketio instead.

``socketio.AsyncServer`` with ``AsyncRedisManager`` (so that it could scale out like our hub),
served as ASGI by uvicorn, websocket transport only. Two events: ``join`` (a list of rooms)
and ``msg`` (``{"room": ..., "text": ...}``), re-emitted to the room without the sender.
python-socketio delivers to local sockets directly and publishes to Redis for other hosts;
that is how the library works, and we measure it as shipped.

    python -m bench.baselines.socketio_relay --port 8200 --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse

import socketio
import uvicorn
from starlette.responses import PlainTextResponse

from chat.store import redis_client


class HubClientRedisManager(socketio.AsyncRedisManager):
    """AsyncRedisManager on the hub's own Redis client (chat.store.redis_client), as the bare
    baseline has. With redis-py's default pool, a burst of emits past its 100 connections
    raises "Too many connections", and python-socketio answers that by building a new client
    (new connections) per message: that would measure the misconfiguration, not the library."""

    def _redis_connect(self):
        super()._redis_connect()
        self.redis = redis_client(self.redis_url)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)


def build_app(redis_url: str):
    manager = HubClientRedisManager(redis_url)
    sio = socketio.AsyncServer(
        async_mode="asgi",
        client_manager=manager,
        transports=["websocket"],
        cors_allowed_origins="*",
        logger=False,
        engineio_logger=False,
    )

    @sio.on("join")
    async def join(sid, rooms):
        for room in rooms:
            await sio.enter_room(sid, room)

    @sio.on("msg")
    async def msg(sid, data):
        await sio.emit("msg", data, room=data["room"], skip_sid=sid)

    async def other(scope, receive, send):
        response = PlainTextResponse("ok")
        await response(scope, receive, send)

    return socketio.ASGIApp(sio, other_asgi_app=other)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    # The same uvicorn settings as `livechat serve` (chat/cli.py); Engine.IO does its own pings.
    uvicorn.run(build_app(args.redis_url), host=args.host, port=args.port, log_level="warning", backlog=4096,
                ws="websockets-sansio", ws_max_size=65536, ws_per_message_deflate=False,
                ws_ping_interval=20.0, ws_ping_timeout=20.0, loop="auto", http="auto", access_log=False)


if __name__ == "__main__":
    main()
