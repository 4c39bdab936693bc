"""WebSocket and HTTP clients for the tests, written from docs/protocol.md like any outside client."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import msgpack
import websockets
from redis.asyncio import Redis

from agents.accounts import save_account
from chat import frames

PASSWORD = "correct horse battery"


class Client:
    """A socket that keeps every frame it received, and waits for the ones a test expects."""

    def __init__(self, ws, binary: bool = False):
        self.ws = ws
        self.binary = binary
        self.received: list[dict[str, Any]] = []
        self._unread: list[dict[str, Any]] = []

    async def send(self, **frame: Any) -> None:
        await self.ws.send(msgpack.packb(frame) if self.binary else json.dumps(frame))

    async def _next(self, timeout: float) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        frame = msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)
        self.received.append(frame)
        return frame

    async def expect(self, kind: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """The first frame (already buffered or still to come) of this type whose fields
        equal ``match``; frames passed over stay available to later expects."""
        for i, frame in enumerate(self._unread):
            if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
                return self._unread.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {kind} frame {match or ''} within {timeout}s; got {self.received[-8:]}")
            try:
                frame = await self._next(remaining)
            except asyncio.TimeoutError:
                continue
            if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
                return frame
            self._unread.append(frame)

    async def messages(self, count: int, timeout: float = 10.0, **match: Any) -> list[dict[str, Any]]:
        return [await self.expect("message", timeout, **match) for _ in range(count)]

    async def closed_code(self, timeout: float = 10.0) -> int | None:
        """Read until the server closes the socket; return the close code."""
        try:
            while True:
                await self._next(timeout)
        except websockets.ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None

    async def close(self) -> None:
        await self.ws.close()


# Test clients send no keepalive pings of their own (the hub pings them): websockets draws
# ping payloads from the global `random`, which hypothesis, drawing in another thread during
# the property test, reports as a misuse.


async def visitor(hub, lang: str, binary: bool = False, **hello: Any) -> tuple[Client, dict[str, Any]]:
    """Open /ws/visitor, say hello, return the client and its welcome frame."""
    ws = await websockets.connect(hub.ws_url + "/ws/visitor",
                                  subprotocols=[frames.MSGPACK_SUBPROTOCOL] if binary else None,
                                  max_size=2**22, ping_interval=None)
    client = Client(ws, binary)
    await client.send(type="hello", lang=lang, **hello)
    return client, await client.expect("welcome")


def login_cookie(hub, username: str, password: str = PASSWORD) -> str:
    """POST /agent/login like a non-browser client; return the session cookie header value."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    body = urllib.parse.urlencode({"username": username, "password": password}).encode()
    opener = urllib.request.build_opener(NoRedirect)
    try:
        response = opener.open(hub.base_url + "/agent/login", body, timeout=10)
    except urllib.error.HTTPError as exc:
        response = exc
    if response.status not in (302, 303):
        raise AssertionError(f"login of {username} failed with {response.status}")
    cookie = next(v for k, v in response.headers.items() if k.lower() == "set-cookie" and v.startswith("lc_session="))
    return cookie.split(";", 1)[0]


async def create_agent(rds: Redis, username: str, langs: list[str], *, max_chats: int = 3,
                       topics: list[str] | None = None, role: str = "agent", name: str | None = None) -> None:
    await save_account(rds, username, PASSWORD, langs=langs, topics=topics or [], max_chats=max_chats,
                       role=role, name=name)


async def agent(hub, rds: Redis, username: str, langs: list[str], *, online: bool = True, max_chats: int = 3,
                topics: list[str] | None = None, name: str | None = None,
                create: bool = True, cookie: str | None = None) -> tuple[Client, dict[str, Any]]:
    """An agent account, logged in over HTTP (unless a session cookie is given), on
    /ws/agent; online unless told otherwise."""
    if create:
        await create_agent(rds, username, langs, max_chats=max_chats, topics=topics, name=name)
    cookie = cookie or await asyncio.to_thread(login_cookie, hub, username)
    ws = await websockets.connect(hub.ws_url + "/ws/agent", additional_headers={"Cookie": cookie}, max_size=2**22,
                                  ping_interval=None)
    client = Client(ws)
    welcome = await client.expect("welcome")
    if online:
        await client.send(type="status", status="online")
        await client.expect("status", status="online")
    return client, welcome
