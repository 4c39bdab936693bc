"""Redis for the tests: the databases of the session's redis-server, a Redis that can crash
and come back on the same address, and routing's view of who holds what (read only: tests
reach state through sockets, HTTP, the CLI or mail, and only read it here)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgpack
from redis.asyncio import Redis

from chat import keys
from chat.embedded_redis import EmbeddedRedis
from tests.support.clients import create_agent
from tests.support.servers import free_port

# Databases of the session's redis-server (16 of them): 0 is the shared hub's; a module that
# runs a hub or keys of its own, which must meet nobody else's, has its own number here.
DATABASES = {
    "tickets_triggers": 6, "scaleout_timer_race": 10, "tickets_mail_guards": 8, "hostile_caps_ceiling": 9,
    "transcripts": 11, "timers": 12, "mail_in": 13, "ticket_desk": 14, "ticket_desk_fast": 15,
    "maildir": 4,
    "reports": 5, "reports_day": 7,
    "ticket_inbox": 1, "ticket_inbox_browser": 2, "ticket_inbox_late": 3,
}


def db_url(redis_url: str, db: int) -> str:
    """The same Redis, another database: for tests whose keys must not meet the hubs' (db 0)."""
    return f"{redis_url}{'&' if '?' in redis_url else '?'}db={db}"


class RestartableRedis:
    """An embedded redis-server on a fixed address (a loopback port, or the unix socket of
    the embedded default), so that it comes back where the hubs expect it."""

    def __init__(self, data_dir: Path, port: int | None):
        self.data_dir, self.port = data_dir, port
        self.server = EmbeddedRedis(self.data_dir, port=self.port)  # appendfsync always

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self.server = EmbeddedRedis(self.data_dir, port=self.port)
        self.server.start()

    def crash(self) -> None:
        """SIGKILL: no chance to flush anything; only what was fsynced survives."""
        self.server.kill()

    def stop(self) -> None:
        if self.server:
            self.server.stop()


def redis_with_supervisor(data_dir: Path, username: str = "boss") -> RestartableRedis:
    """A restartable Redis on a port of its own, started, with one supervisor account (the
    desks of the mail-in tests read tickets through the API as that supervisor)."""
    server = RestartableRedis(data_dir, free_port())
    server.start()

    async def accounts() -> None:
        client = Redis.from_url(server.url)
        await create_agent(client, username, ["en"], role="supervisor")
        await client.aclose()

    asyncio.run(accounts())
    return server


async def held(rds: Redis, username: str) -> set[str]:
    """The chats an agent holds, as Redis sees it."""
    return {c.decode() for c in await rds.smembers(keys.agent_chats(username))}


async def route(rds: Redis, chat_id: str) -> dict[str, Any] | None:
    raw = await rds.hget(keys.ROUTE, chat_id)
    return msgpack.unpackb(raw) if raw else None
