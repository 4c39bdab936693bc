"""Shared pieces of the routing tests: visitors from a chosen client address, identity tokens,
the Redis view of who holds what, and a fixture that closes every socket a test opened.

Each visitor here comes from an address of its own (X-Forwarded-For, which uvicorn trusts from
loopback): the emergency abuse guard and the new-chat limit count per address, so our tests
neither trip them by accident nor use up the allowance of 127.0.0.1 that other tests share.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import msgpack
import pytest
import websockets
from redis.asyncio import Redis

from chat import keys
from chat.identity import sign
from tests.clients import Client, agent
from tests.servers import TEST_SITE_SECRET


def token(plan: str, *, sub: str = "u-1", ttl: float = 3600, secret: str = TEST_SITE_SECRET, **claims: Any) -> str:
    """An identity token as a customer's site would mint it."""
    return sign(secret, {"sub": sub, "plan": plan, "exp": int(time.time() + ttl), **claims})


def fresh_address() -> str:
    """A client address nobody else uses (for the per-address guards and limits)."""
    return "10.%d.%d.%d" % tuple(secrets.randbelow(250) + 1 for _ in range(3))


class Sockets:
    """Opens visitors and agents and closes them all when the test ends."""

    def __init__(self, rds: Redis):
        self.rds = rds
        self.open: list[Client] = []

    async def visitor(self, hub, lang: str, *, address: str | None = None, **hello: Any) -> tuple[Client, dict[str, Any]]:
        """A visitor from its own client address unless told one (per-address limits and guards
        then never mix between tests), saying hello; returns the client and its welcome."""
        headers = {"X-Forwarded-For": address or fresh_address()}
        ws = await websockets.connect(hub.ws_url + "/ws/visitor", additional_headers=headers, max_size=2**22)
        client = Client(ws)
        self.open.append(client)
        await client.send(type="hello", lang=lang, **hello)
        return client, await client.expect("welcome")

    async def agent(self, hub, username: str, langs: list[str], **kwargs: Any) -> tuple[Client, dict[str, Any]]:
        client, welcome = await agent(hub, self.rds, username, langs, **kwargs)
        self.open.append(client)
        return client, welcome

    async def close_all(self) -> None:
        async def close(client: Client) -> None:
            try:
                await asyncio.wait_for(client.close(), 5)
            except Exception:
                pass

        await asyncio.gather(*(close(c) for c in self.open))


@pytest.fixture
async def sockets(rds):
    """Visitors and agents of one test, closed at its end (accounts are cheaply hashed: conftest)."""
    opened = Sockets(rds)
    yield opened
    await opened.close_all()


async def held(rds: Redis, username: str) -> set[str]:
    """The chats an agent holds, as Redis sees it."""
    return {c.decode() for c in await rds.smembers(keys.agent_chats(username))}


async def route(rds: Redis, chat_id: str) -> dict[str, Any] | None:
    raw = await rds.hget(keys.ROUTE, chat_id)
    return msgpack.unpackb(raw) if raw else None


async def barrier(client: Client) -> None:
    """Every frame this client sent before has been handled: the hub handles one socket's
    frames in order, and answers an unknown frame type with an error."""
    marker = "barrier-" + secrets.token_hex(4)
    await client.send(type=marker)
    await client.expect("error", code="bad_frame")


async def close_chat(agent_client: Client, chat_id: str) -> None:
    await agent_client.send(type="close", chat_id=chat_id, resolution="resolved")
    await agent_client.expect("closed", chat_id=chat_id)
