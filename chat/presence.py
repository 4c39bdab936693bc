"""Presence of this process's sockets in Redis, so that other processes (the sweeps of
chat/duties.py) can tell a vanished socket from a live one: the marks written as sockets come
and go, and the heartbeat that refreshes them all once a beat.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import RedisError

from chat import frames, keys
from chat.cancellation import raise_if_cancelled
from chat.dispatch import Dispatch
from chat.registry import Registry
from chat.runtime import Runtime
from chat.stats import MessageCounter


class Presence:
    """Presence marks made as this process's sockets come and go (an agent connects or
    leaves, a waiting visitor resumes or leaves: who, and when last seen), written together:
    marks made while a write is in flight wait for it and then go out in one pipeline, one
    ZADD per sorted set, so a thousand sockets closing at once cost one round trip, not a
    thousand. The sweeps read the same sorted sets as before (chat/duties.py); a mark is
    late by one round trip at most, against grace periods of many heartbeats. The heartbeat
    itself writes every socket's mark in one pipeline a beat (Heartbeat.beat)."""

    def __init__(self, redis: Any):
        self.redis = redis
        self._pending: dict[str, dict[str, float]] = {}
        self._written: asyncio.Future | None = None
        self._flusher: asyncio.Task | None = None

    def mark(self, key: str, member: str, when: float) -> "asyncio.Future[None]":
        """Set member's time in the sorted set key (keys.VISITORS_SEEN or AGENTS_SEEN) with
        the next write; the future ends when it is stored, or with the write's error."""
        self._pending.setdefault(key, {})[member] = when
        if self._written is None:
            self._written = asyncio.get_running_loop().create_future()
            self._written.add_done_callback(_retrieved)  # nobody need wait for a mark
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="presence")
        return self._written

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, written = self._pending, self._written
                self._pending, self._written = {}, None
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for key, marks in batch.items():
                            pipe.zadd(key, marks)
                        await pipe.execute()
                except Exception as exc:
                    if written is not None and not written.done():
                        written.set_exception(exc)
                    continue
                except BaseException:
                    if written is not None and not written.done():
                        written.cancel()
                    raise
                if written is not None and not written.done():
                    written.set_result(None)
        finally:
            self._flusher = None


def _retrieved(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


class Heartbeat:
    """Once a beat ([timing] heartbeat): every socket's presence, the agents' profiles read
    afresh, agent sessions re-checked (a socket whose session ended is cut off), the relayed
    message count stored, and waiting chats offered again to agents with room."""

    def __init__(self, rt: Runtime, registry: Registry, dispatch: Dispatch, messages: MessageCounter):
        self.rt = rt
        self.registry = registry
        self.dispatch = dispatch
        self.messages = messages

    async def run(self) -> None:
        while True:
            try:
                anyone_waiting = await self.beat()
                await self.messages.flush(self.rt.redis)
                if anyone_waiting and self.registry.hungry_agents():
                    self.dispatch.kick()  # safety net: a lost doorbell costs one beat, never a chat
            except RedisError:
                raise_if_cancelled()
            await asyncio.sleep(self.rt.config.timing.heartbeat)

    async def beat(self) -> bool:
        """Refresh presence and re-check agent sessions; True if any chat is waiting."""
        now = self.rt.clock()
        agents, visitors = self.registry.agents, self.registry.visitors
        changes = self.dispatch.profiles_changes
        async with self.rt.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.QUEUE_ALL)
            pipe.hgetall(keys.AGENTS)  # the agents' profiles, afresh once a beat (a lost announcement costs one beat)
            if agents:
                pipe.zadd(keys.AGENTS_SEEN, {u: now for u in agents})
            watched = [c for c, conns in visitors.items() if conns and next(iter(conns)).needs_presence()]
            if watched:
                pipe.zadd(keys.VISITORS_SEEN, {c: now for c in watched})
            agent_conns = [c for conns in agents.values() for c in conns if c.session_id]
            for conn in agent_conns:
                pipe.exists(keys.session(conn.session_id))
            results = await pipe.execute()
        self.dispatch.profiles_read(results[1], changes)
        for conn, alive in zip(agent_conns, results[len(results) - len(agent_conns):]):
            if not alive:
                conn.cut_off(frames.CLOSE_POLICY, "session ended: log in again")
        return results[0] > 0
