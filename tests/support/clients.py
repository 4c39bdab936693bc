"""The WebSocket client of the tests, written from docs/protocol.md like any outside client;
visitors and agents on it; accounts and the one way to sign in without a browser."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any, Callable

import msgpack
import websockets
from redis.asyncio import Redis

from agents.accounts import save_account
from chat import frames
from chat.identity import sign
from tests.support.http import form, request
from tests.support.servers import TEST_SITE_SECRET

PASSWORD = "correct horse battery"  # every account the tests create has it


class Client:
    """A socket that keeps every frame it received (``received``), and waits for the ones a
    test expects. Frames are read when a test waits for one, not in the background.

    Two ways to take frames: ``expect`` takes the first matching frame not yet taken, wherever
    it is (frames passed over stay available to later expects); ``wait_for`` takes the first
    matching frame after the last one it took (frames passed over are behind it for good)."""

    def __init__(self, ws: Any, binary: bool = False):
        self.ws = ws
        self.binary = binary
        self.received: list[dict[str, Any]] = []
        self.chat_id = ""  # a visitor's chat, from its welcome
        self._taken: set[int] = set()
        self._cursor = 0

    async def send(self, **frame: Any) -> None:
        await self.ws.send(msgpack.packb(frame) if self.binary else json.dumps(frame))

    async def _next(self, timeout: float) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        frame = msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)
        self.received.append(frame)
        return frame

    async def _take(self, match: Callable[[dict[str, Any]], bool], start: int, timeout: float,
                    what: str) -> tuple[int, dict[str, Any]]:
        """The first frame from index start on, not yet taken, that matches; read more as needed."""
        scanned = start

        def scan(received: list[dict[str, Any]]) -> tuple[int, dict[str, Any]] | None:
            nonlocal scanned
            while scanned < len(received):
                i, scanned = scanned, scanned + 1
                if i not in self._taken and match(received[i]):
                    self._taken.add(i)
                    return i, received[i]
            return None

        return await self.until(scan, timeout, what)

    async def expect(self, kind: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """The first frame (already received or still to come) of this type whose fields equal
        ``match``, not taken before."""
        def matches(frame: dict[str, Any]) -> bool:
            return frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items())

        return (await self._take(matches, 0, timeout, f"{kind} frame {match or ''}"))[1]

    async def messages(self, count: int, timeout: float = 10.0, **match: Any) -> list[dict[str, Any]]:
        return [await self.expect("message", timeout, **match) for _ in range(count)]

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        """The first frame after the last one wait_for took that matches."""
        i, frame = await self._take(predicate, self._cursor, timeout, "frame that matches")
        self._cursor = i + 1
        return frame

    async def wait_type(self, kind: str, timeout: float = 15.0) -> dict[str, Any]:
        return await self.wait_for(lambda f: f.get("type") == kind, timeout)

    async def until(self, check: Callable[[list[dict[str, Any]]], Any], timeout: float = 20.0,
                    what: str = "frame that meets the condition") -> Any:
        """Wait until check(every frame so far) is truthy, reading more frames as needed; return
        its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (value := check(self.received)):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout}s; got {self.received[-8:]}")
            try:
                await self._next(remaining)
            except asyncio.TimeoutError:
                continue
        return value

    def frames_of(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.received if f.get("type") == kind]

    def view(self, chat_id: str) -> dict[int, str]:
        """seq -> text of every message of one chat this agent was shown (histories in welcome and
        assigned frames, and live frames); fails if one seq ever came with two different texts."""
        seen: dict[int, str] = {}
        entries = [c for f in self.frames_of("welcome") for c in f.get("chats", [])] + self.frames_of("assigned")
        messages = [m for e in entries if e["chat_id"] == chat_id for m in e.get("history", [])]
        messages += [f for f in self.frames_of("message") if f.get("chat_id") == chat_id]
        for m in messages:
            assert seen.setdefault(m["seq"], m["text"]) == m["text"], m
        return seen

    async def assigned(self, timeout: float = 20.0) -> str:
        """Wait for a chat to be given to this agent; return its chat_id."""
        return (await self.wait_for(lambda f: f.get("type") == "assigned", timeout))["chat_id"]

    async def got(self, text: str, timeout: float = 20.0) -> dict[str, Any]:
        """Wait for a live message frame with this text."""
        return await self.wait_for(lambda f: f.get("type") == "message" and f.get("text") == text, timeout)

    async def say(self, text: str) -> dict[str, Any]:
        """A visitor sends a message; return its acknowledgement (the message echoed with its seq)."""
        cid = secrets.token_hex(8)
        await self.send(type="message", text=text, client_id=cid)
        return await self.wait_for(lambda f: f.get("type") == "message" and f.get("client_id") == cid)

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


async def connect(hub: Any, path: str, *, binary: bool = False, headers: dict[str, str] | None = None) -> Client:
    """Open one of the hub's sockets (nothing sent or read yet)."""
    ws = await websockets.connect(hub.ws_url + path, subprotocols=[frames.MSGPACK_SUBPROTOCOL] if binary else None,
                                  additional_headers=headers, max_size=2**22, ping_interval=None)
    return Client(ws, binary)


async def visitor(hub: Any, lang: str, binary: bool = False, *, address: str | None = None,
                  **hello: Any) -> tuple[Client, dict[str, Any]]:
    """Open /ws/visitor (from this client address, passed as X-Forwarded-For, if given), say
    hello, return the client and its welcome frame."""
    client = await connect(hub, "/ws/visitor", binary=binary, headers={"X-Forwarded-For": address} if address else None)
    await client.send(type="hello", lang=lang, **hello)
    welcome = await client.expect("welcome")
    client.chat_id = welcome.get("chat_id", "")
    return client, welcome


def login_cookie(hub: Any, username: str, password: str = PASSWORD) -> str:
    """Sign in over HTTP like a non-browser client (POST /agent/login, no redirect followed);
    return the Cookie header value ("lc_session=...")."""
    reply = request(hub.base_url, "POST", "/agent/login", *form(username=username, password=password))
    line = reply.cookies().get("lc_session")
    if reply.status not in (302, 303) or not line:
        raise AssertionError(f"login of {username} failed with {reply.status}")
    return line.split(";", 1)[0]


async def create_agent(rds: Redis, username: str, langs: list[str], *, max_chats: int = 3,
                       topics: list[str] | None = None, role: str = "agent", name: str | None = None) -> str:
    """An account with the tests' password, as `livechat agent add` makes it; its username."""
    await save_account(rds, username, PASSWORD, langs=langs, topics=topics or [], max_chats=max_chats,
                       role=role, name=name)
    return username


async def agent(hub: Any, rds: Redis, username: str, langs: list[str], *, online: bool = True, max_chats: int = 3,
                topics: list[str] | None = None, name: str | None = None,
                create: bool = True, cookie: str | None = None) -> tuple[Client, dict[str, Any]]:
    """An agent account, logged in over HTTP (unless a session cookie is given), on
    /ws/agent; online unless told otherwise."""
    if create:
        await create_agent(rds, username, langs, max_chats=max_chats, topics=topics, name=name)
    cookie = cookie or await asyncio.to_thread(login_cookie, hub, username)
    client = await connect(hub, "/ws/agent", headers={"Cookie": cookie})
    welcome = await client.expect("welcome")
    if online:
        await client.send(type="status", status="online")
        await client.expect("status", status="online")
    return client, welcome


def token(plan: str, *, sub: str = "u-1", ttl: float = 3600, secret: str = TEST_SITE_SECRET, **claims: Any) -> str:
    """An identity token as a customer's site would mint it."""
    return sign(secret, {"sub": sub, "plan": plan, "exp": int(time.time() + ttl), **claims})


def fresh_address() -> str:
    """A client address nobody else uses, passed as X-Forwarded-For (uvicorn trusts it from
    loopback): the per-address guards and limits then never mix between tests."""
    return "10.%d.%d.%d" % tuple(secrets.randbelow(250) + 1 for _ in range(3))


async def barrier(client: Client) -> None:
    """Every frame this client sent before has been handled: the hub handles one socket's
    frames in order, and answers an unknown frame type with an error."""
    marker = "barrier-" + secrets.token_hex(4)
    await client.send(type=marker)
    await client.expect("error", code="bad_frame")


async def close_chat(agent_client: Client, chat_id: str) -> None:
    await agent_client.send(type="close", chat_id=chat_id, resolution="resolved")
    await agent_client.expect("closed", chat_id=chat_id)


class Sockets:
    """Opens visitors, agents and cookie sockets, and closes them all when the test ends (the
    ``sockets`` fixture)."""

    def __init__(self, rds: Redis):
        self.rds = rds
        self.open: list[Client] = []

    async def visitor(self, hub: Any, lang: str, *, address: str | None = None,
                      **hello: Any) -> tuple[Client, dict[str, Any]]:
        """A visitor from its own client address unless told one, saying hello; returns the
        client and its welcome."""
        client, welcome = await visitor(hub, lang, address=address or fresh_address(), **hello)
        self.open.append(client)
        return client, welcome

    async def agent(self, hub: Any, username: str, langs: list[str], **kwargs: Any) -> tuple[Client, dict[str, Any]]:
        client, welcome = await agent(hub, self.rds, username, langs, **kwargs)
        self.open.append(client)
        return client, welcome

    async def cookie(self, hub: Any, cookie: str, path: str = "/ws/agent", **headers: str) -> Client:
        """An agent or supervisor socket opened with a session cookie (nothing read yet)."""
        client = await connect(hub, path, headers={"Cookie": cookie, **headers})
        self.open.append(client)
        return client

    async def close_all(self) -> None:
        async def close(client: Client) -> None:
            try:
                await asyncio.wait_for(client.close(), 5)
            except Exception:
                pass

        await asyncio.gather(*(close(c) for c in self.open))
