"""Live fan-out between hub processes: one Redis pub/sub connection per process.

Pub/sub is only the doorbell. The chat log in Redis is the source of truth: after a lost
connection the bus resubscribes and, once Redis has confirmed the subscriptions, tells every
listener to catch up from the log (what was published while it was away is not replayed).

On a Redis Cluster the bus is sharded (:class:`ShardedBus`): every channel name carries the
hash tag of the keys it is about, SSUBSCRIBE is sent to the master that owns that slot (one
connection per master in use) and publishers use SPUBLISH (`chat.store.publish`), so a message
travels to one shard instead of being broadcast to every node of the cluster. A single Redis
(the embedded 6.2 too) keeps plain PUBLISH/SUBSCRIBE: with one shard, sharding buys nothing.

Every message a hub relays comes through here, so the reading is lean: redis-py opens the
connection (TCP, unix socket or TLS; AUTH, SELECT), then the bus reads the socket itself and
parses whatever arrived with hiredis in one go, instead of one redis-py call (timeouts,
retries, pool bookkeeping) per message.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

import hiredis
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chat.cancellation import raise_if_cancelled
from chat.store import Cluster

log = logging.getLogger("livechat.bus")

HELLO = "lc:bus:hello"
READ_SIZE = 1 << 16
REFUSED_WAIT = 0.5  # seconds before reconnecting after Redis refused a pub/sub command
SUBSCRIBE_TIMEOUT = 5.0  # seconds for Redis to confirm a SUBSCRIBE; then the bus reconnects
IDLE_PING = 10.0  # seconds of silence before the bus asks Redis for a PONG; as long again without one: reconnect

Handler = Callable[[str, bytes], None]
LOST = (RedisConnectionError, RedisTimeoutError, OSError)


class Link:
    """One subscriber connection. redis-py's Connection does the handshake and writes
    commands; replies are read from its stream and parsed here."""

    def __init__(self, redis: Redis, node: ClusterNode | None = None):
        # No health checks: redis-py would read their replies itself, from under this reader.
        if node is not None:  # one node of a cluster (sharded pub/sub)
            self.conn = node.connection_class(**{**node.connection_kwargs, "health_check_interval": 0})
        else:
            pool = redis.connection_pool
            self.conn = pool.connection_class(**{**pool.connection_kwargs, "health_check_interval": 0})
        self.parser = hiredis.Reader()
        self._lock = asyncio.Lock()

    async def open(self, channels: list[str], command: str = "SUBSCRIBE") -> None:
        await self.conn.connect()
        if channels:
            await self.send(command, *channels)

    async def send(self, *args: Any) -> None:
        async with self._lock:  # one writer at a time (drain is not for concurrent callers)
            if not self.conn.is_connected:  # redis-py would reconnect quietly, unsubscribed
                raise RedisConnectionError("pub/sub connection closed")
            await self.conn.send_command(*args)

    async def read(self) -> list[Any]:
        """Every reply that has arrived (waiting for at least one)."""
        stream = self.conn._reader
        if stream is None:
            raise RedisConnectionError("pub/sub connection closed")
        while True:
            data = await stream.read(READ_SIZE)
            if not data:
                raise RedisConnectionError("Redis closed the pub/sub connection")
            self.parser.feed(data)
            replies = []
            while (reply := self.parser.gets()) is not False:
                replies.append(reply)
            if replies:
                return replies

    async def close(self) -> None:
        try:
            await self.conn.disconnect()
        except Exception:
            pass



async def add_handler(handlers: dict[str, set[Handler]], confirmed: dict[str, asyncio.Future], channel: str,
                      handler: Handler) -> asyncio.Future | None:
    """Record a handler. For a channel already subscribed, wait for its confirmation and
    return None; for a new one, return the future its SUBSCRIBE confirmation will settle."""
    listeners = handlers.setdefault(channel, set())
    listeners.add(handler)
    if len(listeners) > 1:
        waiter = confirmed.get(channel)
        if waiter and not waiter.done():
            await asyncio.wait_for(asyncio.shield(waiter), 5)
        return None
    waiter = confirmed[channel] = asyncio.get_running_loop().create_future()
    return waiter


def drop_handler(handlers: dict[str, set[Handler]], confirmed: dict[str, asyncio.Future], channel: str,
                 handler: Handler) -> bool:
    """Forget a handler; True when it was the channel's last (the caller unsubscribes it)."""
    listeners = handlers.get(channel)
    if not listeners:
        return False
    listeners.discard(handler)
    if listeners:
        return False
    del handlers[channel]
    confirmed.pop(channel, None)
    return True


def deliver(handlers: dict[str, set[Handler]], channel: str, data: bytes) -> None:
    """Hand one message to every handler of its channel; one failing handler spoils nothing
    for the others."""
    for handler in list(handlers.get(channel, ())):
        try:
            handler(channel, data)
        except Exception:
            log.exception("handler for %s failed", channel)

def _give_up(waiters: list[asyncio.Future]) -> None:
    """The confirmations did not come in time: their subscribers go on (False), and the bus
    reconnects, subscribing every channel again."""
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(False)


async def _confirmation(waiter: asyncio.Future | None) -> bool:
    """Wait for a subscription's confirmation; a cancelled caller leaves it to the others
    waiting on the same channel. False when it timed out or the bus was reconnecting."""
    if waiter is None:
        return True
    return bool(waiter.result() if waiter.done() else await asyncio.shield(waiter))


class Bus:
    def __init__(self, redis: Redis):
        self.redis = redis
        self._handlers: dict[str, set[Handler]] = {}
        self._confirmed: dict[str, asyncio.Future] = {}
        self._batch: list[tuple[str, asyncio.Future]] = []  # to SUBSCRIBE at the end of this turn of the loop
        self._sending: set[asyncio.Task] = set()
        self._link: Link | None = None
        self._task: asyncio.Task | None = None
        self._reconnect_hooks: list[Callable[[], None]] = []
        self._resync_at: int | None = None  # run the hooks once this many channels are confirmed
        self.connected = asyncio.Event()

    async def start(self) -> None:
        link = Link(self.redis)
        try:
            await link.open([HELLO])
        except BaseException:
            await link.close()
            raise
        self._link = link
        self._task = asyncio.create_task(self._read(), name="bus-reader")
        self.connected.set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=3.0)  # bounded: shutdown must not hang here
        if self._link:
            await self._link.close()

    def on_reconnect(self, hook: Callable[[], None]) -> None:
        """Called after the connection came back: listeners catch up from the log."""
        self._reconnect_hooks.append(hook)

    async def subscribe(self, channel: str, handler: Handler) -> None:
        """Deliver this channel's messages to handler; returns once Redis confirmed, so a
        read of the log after this call cannot miss a message published in between."""
        await self.subscribe_soon(channel, handler)

    def subscribe_soon(self, channel: str, handler: Handler) -> Awaitable[None]:
        """:meth:`subscribe` started now, confirmed when the result is awaited: the caller
        can do other work meanwhile (a new chat's first reads). The channels asked for in one
        turn of the event loop go to Redis in one SUBSCRIBE (a hub accepting visitors
        subscribes a channel for each: a write to Redis each, and a timer each for the
        confirmation, were a good part of a hello's CPU); one deadline covers them all."""
        self._handlers.setdefault(channel, set()).add(handler)
        waiter = self._confirmed.get(channel)
        if waiter is not None:  # subscribed already, or on its way (the same handler may ask twice)
            return _confirmation(waiter)
        waiter = self._confirmed[channel] = asyncio.get_running_loop().create_future()
        if self._link is None or not self.connected.is_set():
            # Reconnecting: the new connection subscribes every channel, then listeners resync.
            waiter.set_result(False)
        else:
            if not self._batch:
                asyncio.get_running_loop().call_soon(self._send_batch)
            self._batch.append((channel, waiter))
        return _confirmation(waiter)

    def _send_batch(self) -> None:
        batch, self._batch = self._batch, []
        # Only channels still wanted by the same request and not yet confirmed: an
        # unsubscribe or a reconnect may have come in between.
        wanted = {c: w for c, w in batch if self._confirmed.get(c) is w and not w.done()}
        if not wanted:
            return
        if self._link is None or not self.connected.is_set():
            _give_up(list(wanted.values()))  # the connection went meanwhile: its successor subscribes them
            return
        task = asyncio.ensure_future(self._subscribe_batch(self._link, wanted))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _subscribe_batch(self, link: Link, wanted: dict[str, asyncio.Future]) -> None:
        waiters = list(wanted.values())
        timer = asyncio.get_running_loop().call_later(SUBSCRIBE_TIMEOUT, _give_up, waiters)
        try:
            await link.send("SUBSCRIBE", *wanted)
            if not all(await asyncio.gather(*waiters)) and link is self._link:
                await self._lost()  # no confirmation in time: reconnect; listeners resync then
        except LOST:
            _give_up(waiters)
            if link is self._link:  # not a newer connection made meanwhile
                await self._lost()
        finally:
            timer.cancel()

    async def _lost(self) -> None:
        """Give up on the connection: the reader's pending read fails at once, and it builds a
        new connection with every channel, then listeners resync."""
        self.connected.clear()
        if self._link is not None:
            await self._link.close()

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        waiter = self._confirmed.get(channel)
        if drop_handler(self._handlers, self._confirmed, channel, handler):
            if waiter is not None and not waiter.done():
                waiter.set_result(True)  # nobody waits for this subscription now
            if self._link is not None and self.connected.is_set():
                try:
                    await self._link.send("UNSUBSCRIBE", channel)
                except LOST:
                    pass

    async def _read(self) -> None:
        backoff = 0.05
        pinged = False
        while True:
            raise_if_cancelled()  # a cancel turned into a caught TimeoutError (Python 3.11)
            if not self.connected.is_set():
                if not await self._reconnect():
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 0.5)
                    continue
                backoff, pinged = 0.05, False
            link = self._link
            try:
                async with asyncio.timeout(IDLE_PING):
                    replies = await link.read()
            except TimeoutError:
                if pinged:
                    log.warning("pub/sub connection silent after a PING; reconnecting")
                    await self._lost()
                else:
                    pinged = True
                    try:
                        await link.send("PING")
                    except LOST:
                        await self._lost()
                continue
            except LOST as exc:
                if self.connected.is_set():
                    log.warning("pub/sub connection lost (%s); reconnecting", exc)
                self.connected.clear()
                continue
            pinged = False
            for reply in replies:
                if isinstance(reply, Exception):  # e.g. LOADING, NOPERM: the subscription did not take
                    log.warning("pub/sub: Redis refused a command (%s); reconnecting", reply)
                    await self._lost()
                    await asyncio.sleep(REFUSED_WAIT)
                    break
                self._dispatch(reply)

    def _dispatch(self, reply: Any) -> None:
        if not isinstance(reply, list) or len(reply) < 3:
            return  # a PONG (["pong", ""]) or an error reply: nothing to deliver
        kind = reply[0]
        if kind == b"message":
            deliver(self._handlers, reply[1].decode(), reply[2])
        elif kind == b"subscribe":
            waiter = self._confirmed.get(reply[1].decode())
            if waiter and not waiter.done():
                waiter.set_result(True)
            if self._resync_at is not None and int(reply[2]) >= self._resync_at:
                self._resync_at = None
                self._run_hooks()

    async def _reconnect(self) -> bool:
        """A new connection subscribed to every channel in use; False while Redis is
        unreachable."""
        link = Link(self.redis)
        channels = list(self._handlers) or [HELLO]
        try:
            await link.open(channels)
        except LOST:
            await link.close()
            return False
        old, self._link = self._link, link
        self.connected.set()
        # Channels first subscribed while the connection was being opened are not in it yet.
        missing = [c for c in self._handlers if c not in channels]
        self._resync_at = len(channels) + len(missing)
        if old is not None:
            await old.close()
        if missing:
            try:
                await link.send("SUBSCRIBE", *missing)
            except LOST:
                self.connected.clear()
                return False
        log.info("pub/sub reconnected; %d channels", len(channels) + len(missing))
        return True

    def _run_hooks(self) -> None:
        log.info("pub/sub subscriptions confirmed again; listeners catch up from the log")
        for hook in self._reconnect_hooks:
            try:
                hook()
            except Exception:
                log.exception("reconnect hook failed")


def make_bus(redis: Redis | Cluster) -> "Bus | ShardedBus":
    """The bus for this client: sharded on a cluster, plain on a single Redis."""
    return ShardedBus(redis) if isinstance(redis, Cluster) else Bus(redis)


TOPOLOGY_CHECK = 2.0  # seconds between comparisons of the sharded subscriptions with the slot map


class ShardedBus:
    """The bus on a Redis Cluster: sharded pub/sub, one connection per master that owns a
    slot in use. Any trouble on any connection (a node gone, a slot moved: Redis then ends
    the slot's subscriptions with an SUNSUBSCRIBE) rebuilds every connection from a fresh
    slot map, then every listener catches up from the log, as after a reconnect of the plain bus."""

    def __init__(self, redis: Cluster):
        self.redis = redis
        self._handlers: dict[str, set[Handler]] = {}
        self._confirmed: dict[str, asyncio.Future] = {}
        self._links: dict[str, Link] = {}
        self._readers: dict[str, asyncio.Task] = {}
        self._reconnect_hooks: list[Callable[[], None]] = []
        self._open_lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._broken = asyncio.Event()
        self._placed: dict[str, str] = {}  # channel -> the node it is subscribed on
        self.connected = asyncio.Event()

    async def start(self) -> None:
        await self.redis.initialize()
        self._task = asyncio.create_task(self._watch(), name="bus-shards")
        self.connected.set()

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._readers.values()) if t]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=3.0)
        await self._close_links()

    def on_reconnect(self, hook: Callable[[], None]) -> None:
        self._reconnect_hooks.append(hook)

    def _node_for(self, channel: str) -> ClusterNode:
        return self.redis.nodes_manager.get_node_from_slot(key_slot(channel.encode()))

    async def _link_for(self, node: ClusterNode) -> Link:
        async with self._open_lock:
            link = self._links.get(node.name)
            if link is None:
                link = Link(self.redis, node)
                try:
                    await link.open([])
                except BaseException:
                    await link.close()
                    raise
                self._links[node.name] = link
                self._readers[node.name] = asyncio.create_task(self._read(node.name, link), name=f"bus-{node.name}")
            return link

    async def subscribe(self, channel: str, handler: Handler) -> None:
        """As :meth:`Bus.subscribe`: returns once the owning shard confirmed."""
        waiter = await add_handler(self._handlers, self._confirmed, channel, handler)
        if waiter is None:
            return
        if not self.connected.is_set():
            return  # rebuilding: the new connections subscribe every channel, then listeners resync
        try:
            node = self._node_for(channel)
            link = await self._link_for(node)
            self._placed[channel] = node.name
            await link.send("SSUBSCRIBE", channel)
            await asyncio.wait_for(asyncio.shield(waiter), 5)
        except (*LOST, asyncio.TimeoutError):
            self._lost()

    def subscribe_soon(self, channel: str, handler: Handler) -> Awaitable[None]:
        """As :meth:`Bus.subscribe_soon` (here one SSUBSCRIBE per channel, started now)."""
        return asyncio.ensure_future(self.subscribe(channel, handler))

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        if not drop_handler(self._handlers, self._confirmed, channel, handler):
            return
        self._placed.pop(channel, None)
        if self.connected.is_set():
            link = self._links.get(self._node_for(channel).name)
            if link is not None:
                try:
                    await link.send("SUNSUBSCRIBE", channel)
                except LOST:
                    pass

    def _lost(self) -> None:
        if self.connected.is_set():
            log.warning("sharded pub/sub: a connection failed; rebuilding every shard's connection")
        self.connected.clear()
        self._broken.set()

    async def _read(self, name: str, link: Link) -> None:
        pinged = False
        while True:
            raise_if_cancelled()
            try:
                async with asyncio.timeout(IDLE_PING):
                    replies = await link.read()
            except TimeoutError:
                if pinged:
                    self._lost()
                    return
                pinged = True
                try:
                    await link.send("PING")
                except LOST:
                    self._lost()
                    return
                continue
            except LOST:
                if self._links.get(name) is link:
                    self._lost()
                return
            pinged = False
            for reply in replies:
                if isinstance(reply, Exception):  # MOVED (the slot moved), LOADING, ...
                    log.warning("sharded pub/sub: Redis refused a command (%s)", reply)
                    self._lost()
                    return
                self._dispatch(reply)

    def _dispatch(self, reply: Any) -> None:
        if not isinstance(reply, list) or len(reply) < 3:
            return
        kind = reply[0]
        if kind == b"smessage":
            deliver(self._handlers, reply[1].decode(), reply[2])
        elif kind == b"ssubscribe":
            waiter = self._confirmed.get(reply[1].decode())
            if waiter and not waiter.done():
                waiter.set_result(True)
        elif kind == b"sunsubscribe" and reply[1].decode() in self._handlers:
            self._lost()  # Redis dropped a channel we still listen to: its slot moved

    async def _close_links(self) -> None:
        links, self._links = self._links, {}
        readers, self._readers = self._readers, {}
        for task in readers.values():
            task.cancel()
        for link in links.values():
            await link.close()

    async def _moved(self) -> bool:
        """Whether a channel's slot now lives on another node than the one it is subscribed on
        (a failover or a resharding that Redis did not announce to this connection)."""
        placed = list(self._placed.items())
        if not placed:
            return False
        owners = await self.redis.slot_owners(placed[0][1])
        if owners is None:
            return True

        def owner(slot: int) -> str | None:
            return next((name for start, end, name in owners if start <= slot <= end), None)

        return any(owner(key_slot(channel.encode())) != node for channel, node in placed)

    async def _watch(self) -> None:
        """Rebuild every connection after any failure, until it holds; and every
        TOPOLOGY_CHECK seconds compare where each channel is subscribed with the slot map, so
        that a failover Redis did not announce on this connection is noticed within seconds."""
        backoff = 0.05
        while True:
            try:
                await asyncio.wait_for(self._broken.wait(), TOPOLOGY_CHECK)
            except asyncio.TimeoutError:
                try:
                    if self.connected.is_set() and await self._moved():
                        log.warning("sharded pub/sub: a slot moved to another node; rebuilding")
                        self._lost()
                except Exception as exc:  # whatever it is, this loop is the bus's only way back
                    log.warning("sharded pub/sub: slot map unreadable (%s); rebuilding", type(exc).__name__)
                    self._lost()
                continue
            self._broken.clear()
            await self._close_links()
            try:
                await self.redis.refresh_slots()  # the slot map after a failover
                by_node: dict[str, list[str]] = {}
                nodes: dict[str, ClusterNode] = {}
                for channel in self._handlers:
                    node = self._node_for(channel)
                    nodes[node.name] = node
                    by_node.setdefault(node.name, []).append(channel)
                for channel in self._handlers:
                    future = self._confirmed.get(channel)
                    if future is None or future.done():
                        self._confirmed[channel] = asyncio.get_running_loop().create_future()
                self.connected.set()
                self._placed = {channel: name for name, channels in by_node.items() for channel in channels}
                for name, channels in by_node.items():
                    link = await self._link_for(nodes[name])
                    by_slot: dict[int, list[str]] = {}
                    for channel in channels:  # one SSUBSCRIBE names channels of one slot only (else CROSSSLOT)
                        by_slot.setdefault(key_slot(channel.encode()), []).append(channel)
                    for same_slot in by_slot.values():
                        await link.send("SSUBSCRIBE", *same_slot)
                waiters = [asyncio.shield(f) for f in self._confirmed.values()]
                if waiters:
                    await asyncio.wait_for(asyncio.gather(*waiters), 5)
            except Exception as exc:  # never give up: a dead watcher would leave every listener deaf
                log.warning("sharded pub/sub: cluster not reachable yet (%s)", type(exc).__name__)
                self.connected.clear()
                self._broken.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 0.5)
                continue
            backoff = 0.05
            log.info("sharded pub/sub reconnected on %d shards; listeners catch up from the log", len(by_node))
            for hook in self._reconnect_hooks:
                try:
                    hook()
                except Exception:
                    log.exception("reconnect hook failed")
