"""Live fan-out between hub processes: one Redis pub/sub connection per process.

Pub/sub is only the doorbell. The chat log in Redis is the source of truth: after a lost
connection the bus resubscribes and, once Redis has confirmed the subscriptions, tells every
listener to catch up from the log (what was published while it was away is not replayed).
That holds both when redis-py reconnects on its own inside a read and when the reader gives
up on a connection and builds a new one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("livechat.bus")

HELLO = "lc:bus:hello"

Handler = Callable[[str, bytes], None]


class Bus:
    def __init__(self, redis: Redis):
        self.redis = redis
        self._handlers: dict[str, set[Handler]] = {}
        self._confirmed: dict[str, asyncio.Future] = {}
        self._pubsub = None
        self._task: asyncio.Task | None = None
        self._reconnect_hooks: list[Callable[[], None]] = []
        self._resync_at: int | None = None  # run the hooks once this many channels are confirmed
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=False)
        await self._pubsub.subscribe(HELLO)
        self._watch(self._pubsub)
        self._task = asyncio.create_task(self._read(), name="bus-reader")
        self.connected.set()

    def _watch(self, pubsub) -> None:
        """Hear about redis-py's own reconnects of this pub/sub connection (it resubscribes
        by itself, silently: the listeners must still catch up)."""
        if pubsub.connection is not None:
            pubsub.connection.register_connect_callback(self._on_reconnected)

    async def _on_reconnected(self, connection) -> None:
        # redis-py's own callback has just sent SUBSCRIBE for all of the pub/sub's channels.
        self._resync_at = max(1, len(self._pubsub.channels) if self._pubsub is not None else 1)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=3.0)  # bounded: shutdown must not hang here
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
            self.connected.clear()  # the reader builds a new connection with every channel, then resyncs

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
            if asyncio.current_task().cancelling():
                raise asyncio.CancelledError  # a cancel turned into a caught TimeoutError (Python 3.11)
            if not self.connected.is_set():
                if not await self._reconnect():
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 0.5)
                    continue
                backoff = 0.05
            try:
                message = await self._pubsub.get_message(timeout=5.0)
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError, RuntimeError) as exc:
                if self.connected.is_set():
                    log.warning("pub/sub connection lost (%s); reconnecting", exc)
                self.connected.clear()
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
                if self._resync_at is not None and int(message["data"]) >= self._resync_at:
                    self._resync_at = None
                    self._run_hooks()

    async def _reconnect(self) -> bool:
        """A new pub/sub connection subscribed to every channel in use; False while Redis is
        unreachable (the old connection is kept until a new one works)."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=False)
        channels = list(self._handlers) or [HELLO]
        try:
            await pubsub.subscribe(*channels)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            await _close_quietly(pubsub)
            return False
        old, self._pubsub = self._pubsub, pubsub
        await _close_quietly(old)
        self._watch(pubsub)
        self._resync_at = len(channels)
        self.connected.set()
        log.info("pub/sub reconnected; %d channels", len(channels))
        return True

    def _run_hooks(self) -> None:
        log.info("pub/sub subscriptions confirmed again; listeners catch up from the log")
        for hook in self._reconnect_hooks:
            try:
                hook()
            except Exception:
                log.exception("reconnect hook failed")


async def _close_quietly(pubsub) -> None:
    if pubsub is None:
        return
    try:
        await pubsub.aclose()
    except Exception:
        pass
