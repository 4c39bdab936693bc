"""Live fan-out between hub processes: one Redis pub/sub connection per process.

Pub/sub is only the doorbell. The chat log in Redis is the source of truth: after a lost
connection the bus resubscribes and tells every listener to catch up from the log.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("livechat.bus")

Handler = Callable[[str, bytes], None]


class Bus:
    def __init__(self, redis: Redis):
        self.redis = redis
        self._handlers: dict[str, set[Handler]] = {}
        self._confirmed: dict[str, asyncio.Future] = {}
        self._pubsub = None
        self._task: asyncio.Task | None = None
        self._reconnect_hooks: list[Callable[[], None]] = []
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=False)
        await self._pubsub.subscribe("lc:bus:hello")
        self._task = asyncio.create_task(self._read(), name="bus-reader")
        self.connected.set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._pubsub:
            try:
                await self._pubsub.aclose()
            except Exception:
                pass

    def on_reconnect(self, hook: Callable[[], None]) -> None:
        """Called after the connection came back: listeners catch up from the log."""
        self._reconnect_hooks.append(hook)

    async def subscribe(self, channel: str, handler: Handler) -> None:
        """Deliver this channel's messages to handler; returns once Redis confirmed, so a
        read of the log after this call cannot miss a message published in between."""
        handlers = self._handlers.setdefault(channel, set())
        handlers.add(handler)
        if len(handlers) > 1:
            waiter = self._confirmed.get(channel)
            if waiter and not waiter.done():
                await asyncio.wait_for(asyncio.shield(waiter), 5)
            return
        waiter = asyncio.get_running_loop().create_future()
        self._confirmed[channel] = waiter
        try:
            await self._pubsub.subscribe(channel)
            await asyncio.wait_for(asyncio.shield(waiter), 5)
        except (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError):
            pass  # the reader reconnects, resubscribes and triggers a resync

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        handlers = self._handlers.get(channel)
        if not handlers:
            return
        handlers.discard(handler)
        if not handlers:
            del self._handlers[channel]
            self._confirmed.pop(channel, None)
            try:
                await self._pubsub.unsubscribe(channel)
            except (RedisConnectionError, RedisTimeoutError, OSError):
                pass

    async def _read(self) -> None:
        backoff = 0.05
        while True:
            try:
                message = await self._pubsub.get_message(timeout=5.0)
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self.connected.clear()
                log.warning("pub/sub connection lost (%s); reconnecting", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                await self._reconnect()
                continue
            except Exception:
                log.exception("pub/sub reader error")
                await asyncio.sleep(backoff)
                continue
            if message is None:
                continue
            kind = message["type"]
            channel = message["channel"].decode()
            if kind == "message":
                for handler in list(self._handlers.get(channel, ())):
                    try:
                        handler(channel, message["data"])
                    except Exception:
                        log.exception("handler for %s failed", channel)
            elif kind == "subscribe":
                waiter = self._confirmed.get(channel)
                if waiter and not waiter.done():
                    waiter.set_result(True)

    async def _reconnect(self) -> None:
        try:
            old = self._pubsub
            self._pubsub = self.redis.pubsub(ignore_subscribe_messages=False)
            channels = list(self._handlers) or ["lc:bus:hello"]
            await self._pubsub.subscribe(*channels)
            try:
                await old.aclose()
            except Exception:
                pass
        except (RedisConnectionError, RedisTimeoutError, OSError):
            return
        self.connected.set()
        log.info("pub/sub reconnected; %d channels", len(self._handlers))
        for hook in self._reconnect_hooks:
            try:
                hook()
            except Exception:
                log.exception("reconnect hook failed")
