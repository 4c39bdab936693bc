"""The one place a Redis client is built: a single Redis, or a Redis Cluster.

``REDIS_URL`` picks the kind. ``redis://``, ``rediss://`` and ``unix://`` name one server
(or the embedded one); ``redis+cluster://host:port[,host:port...]`` and
``rediss+cluster://...`` (TLS) name any nodes of a cluster, used only as seeds: the client
asks them for the slot map and talks to whichever node owns a key.

The cluster client is redis-py's own ``redis.asyncio.RedisCluster``: the hub already runs on
redis-py (hiredis parser, asyncio), it follows MOVED/ASK redirections, refreshes the slot map
after a failover, runs pipelines per node and single-slot MULTI/WATCH transactions, and
knows sharded pub/sub (SPUBLISH). Another client (coredis, glide) would mean a second
protocol stack to keep in step for no gain the desk needs.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import weakref
from typing import Any, Sequence, Union
from urllib.parse import urlsplit, urlunsplit

import hiredis
from redis.asyncio import BlockingConnectionPool, Redis
from redis._parsers.hiredis import NOT_ENOUGH_DATA, _AsyncHiredisParser
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, NodesManager, PipelineStrategy, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.exceptions import DataError, MaxConnectionsError, NoScriptError, RedisClusterException, RedisError
from redis.exceptions import ResponseError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

AnyRedis = Union[Redis, RedisCluster]

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster_url(url: str) -> bool:
    """True for ``redis+cluster://`` and ``rediss+cluster://`` URLs."""
    return urlsplit(url).scheme in CLUSTER_SCHEMES


_CLUSTER_KINDS: dict[type, bool] = {}


def is_cluster(redis: Any) -> bool:
    """Whether this client (or pipeline) talks to a Redis Cluster (keys are routed by slot,
    pub/sub is sharded). Asked on every hello and every publish: the answer is kept per
    class, since redis-py's cluster classes are typing Protocols, whose isinstance is slow
    (it was a twentieth of a hello's CPU)."""
    kind = type(redis)
    known = _CLUSTER_KINDS.get(kind)
    if known is None:
        known = _CLUSTER_KINDS[kind] = issubclass(kind, (RedisCluster, ClusterPipeline))
    return known


def cluster_seeds(url: str) -> tuple[str, list[tuple[str, int]]]:
    """The single-node URL carrying the options (password, TLS, query) and the seed nodes
    of a ``redis+cluster://a:1,b:2`` URL."""
    parts = urlsplit(url)
    scheme = CLUSTER_SCHEMES[parts.scheme]
    credentials, _, hosts = parts.netloc.rpartition("@")
    seeds: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host:
            host, port = port, "6379"
        seeds.append((host.strip("[]"), int(port or 6379)))
    if not seeds or not seeds[0][0]:
        raise ValueError(f"{parts.scheme}:// needs at least one host:port")
    first = f"{credentials}@{hosts.split(',')[0]}" if credentials else hosts.split(",")[0]
    return urlunsplit((scheme, first, parts.path, parts.query, "")), seeds


def redis_client(url: str) -> AnyRedis:
    """The process's Redis client, for every process (hub, worker, CLI) and the tests.

    A single Redis: one immediate retry on a broken connection (after Redis restarts, every
    pooled connection is stale and would fail its next command; during a real outage the retry
    is refused at once, so callers still learn quickly that Redis is unavailable), and a pool
    that blocks briefly when all its connections are busy, so a burst waits its turn.

    A cluster: the same timeouts; a few retries with a short back-off, so that a command
    caught by a failover waits for the replica's promotion and the new slot map instead of
    failing (MOVED and ASK are followed by the client itself)."""
    if is_cluster_url(url):
        single, seeds = cluster_seeds(url)
        options = parse_url(single)
        options.pop("db", None)  # a cluster has database 0 only
        if options.pop("connection_class", None) is not None:
            options["ssl"] = True
        options.pop("host", None)
        options.pop("port", None)
        return Cluster(
            startup_nodes=[_Node(host, port) for host, port in seeds],
            socket_connect_timeout=2, socket_timeout=5, max_connections=CLUSTER_CONNECTIONS,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 8),
            retry_on_error=[RedisConnectionError, RedisTimeoutError, ConnectionResetError],
            **options,
        )
    pool = _Pool.from_url(
        url, max_connections=64, timeout=5, socket_connect_timeout=2, socket_timeout=5, health_check_interval=10,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    pool.connection_class = packed_in_c(pool.connection_class)
    return _LeanRedis(connection_pool=pool)


class _Pool(BlockingConnectionPool):
    """redis-py's blocking pool, with a short way for the usual case: a connection is free,
    or nobody waits for the one given back. Every command of the hub takes a connection and
    gives it back; redis-py's way (a condition and a lock taken and released, a timeout
    scheduled and cancelled, its own metrics recorded, an event dispatched) was a twentieth
    of a `hello`'s CPU. Taking and giving back need no lock here: between awaits, asyncio
    runs one thing at a time. While callers wait for a connection (all are busy), a
    connection to reconnect, and redis-py's maintenance mode still go redis-py's way, so
    that waiters are served in turn."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if (args or kwargs or not self._available_connections or getattr(self._condition, "_waiters", True)
                or getattr(self, "_in_maintenance", False)):
            return await super().get_connection(*args, **kwargs)
        connection = self._available_connections.pop()
        self._in_use_connections.add(connection)
        try:
            await self.ensure_connection(connection)  # connected, and nothing left unread on it
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def release(self, connection: Any) -> None:
        if not self.release_nowait(connection):
            await super().release(connection)

    def release_nowait(self, connection: Any) -> bool:
        """Give the connection back at once, when nobody waits for one (nothing to await, so
        no cancellation can leave it half given back); False when release must do it."""
        if (getattr(self._condition, "_waiters", True) or getattr(self, "_in_maintenance", False)
                or connection.should_reconnect()):
            return False
        self._in_use_connections.remove(connection)
        self._available_connections.append(connection)
        return True


class ClusterUnreachable(RedisConnectionError):
    """No node gave a usable slot map (every seed down, or the nodes disagreeing mid-failover)."""


CLUSTER_CONNECTIONS = 64  # per node and process; a burst beyond them waits (_Node)
POOL_WAIT = 5.0  # seconds a command may wait for a free connection, as the single-Redis pool's timeout


class _Node(ClusterNode):
    """redis-py's cluster node, with a wait for a free connection. redis-py's fails a command
    at once with MaxConnectionsError when every connection to the node is in use (150 agents
    signing in together got `unavailable`), and a pipeline meeting that error made redis-py
    close the whole client: every connection of every node, under commands in flight. Here
    a command waits (up to POOL_WAIT), as on a single Redis's blocking pool."""

    __slots__ = ()

    def _has_room(self) -> bool:
        return bool(self._free) or len(self._connections) < self.max_connections

    async def _room(self) -> None:
        if self._has_room():
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + POOL_WAIT
        pause = 0.001
        while not self._has_room():
            if loop.time() >= deadline:
                raise MaxConnectionsError(f"every connection to {self.name} busy for {POOL_WAIT:.0f} s")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.02)

    # redis-py takes the connection before its first await: nothing can take the room between.
    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        await self._room()
        return await super().execute_command(*args, **kwargs)

    async def execute_pipeline(self, commands: Any) -> bool:
        await self._room()
        return await super().execute_pipeline(commands)


class _Nodes(NodesManager):
    """redis-py's map of the cluster, whose nodes are _Node: every node it learns of (at the
    first slot map, after a failover) passes through set_nodes."""

    __slots__ = ()

    def set_nodes(self, old: dict[str, ClusterNode], new: dict[str, ClusterNode], remove_old: bool = False) -> None:
        for node in new.values():
            if type(node) is ClusterNode:
                node.__class__ = _Node
        super().set_nodes(old, new, remove_old)


class _Pipeline(PipelineStrategy):
    """redis-py's pipeline (no transaction), but a retryable error (a connection lost, a
    failover) reads the slot map again before the next try, as a single command does,
    instead of closing the whole client: that cut every other command of the process off
    mid-flight, with AttributeError and RuntimeError from under its connections."""

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        if not self._command_queue:
            return []
        client = self._pipe.cluster_client
        retries = client.retry.get_retries()
        try:
            while True:
                try:
                    if client._initialize:
                        await client.initialize()
                    return await self._execute(client, self._command_queue, raise_on_error=raise_on_error,
                                               allow_redirections=allow_redirections)
                except RedisCluster.ERRORS_ALLOW_RETRY:
                    if retries <= 0:
                        raise
                    retries -= 1
                    client._initialize = True
                    await asyncio.sleep(0.25)
        finally:
            await self.reset()


class Cluster(RedisCluster):
    """redis-py's cluster client, with three differences:

    - a slot map that cannot be read is a RedisError like any other sign that Redis is
      unavailable. redis-py raises its own RedisClusterException there, which is not a
      RedisError, so code that answers `unavailable` and retries would instead die (the
      sharded bus's watcher did, mid-failover, and stopped re-subscribing for good);
    - a command finding every connection to its node in use waits for one (_Node);
    - a pipeline's retry never closes the client under other commands (_Pipeline)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nodes_manager.__class__ = _Nodes

    async def initialize(self, *args: Any, **kwargs: Any) -> "Cluster":
        try:
            await super().initialize(*args, **kwargs)
        except RedisError:
            raise
        except RedisClusterException as exc:
            raise ClusterUnreachable(f"no usable slot map: {exc}") from exc
        return self

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        pipe = super().pipeline(transaction, shard_hint)
        if not transaction:
            pipe._execution_strategy = _Pipeline(pipe)
        return pipe

    async def slot_owners(self, node_name: str) -> list[tuple[int, int, str]] | None:
        """Which master owns each slot range, as the named node sees it now (None: that node
        is no longer in the map). Unlike refresh_slots this leaves the client's own map and
        connections alone: redis-py's refresh marks every pooled connection for reconnect,
        so refreshing every few seconds only to *compare* tore down and rebuilt every
        connection of a busy hub, and commands caught mid-reconnect failed."""
        node = self.get_node(node_name=node_name)
        if node is None:
            return None
        reply = await self.execute_command("CLUSTER SLOTS", target_nodes=node)
        return [(start, end, f"{info['primary'][0] or node.host}:{info['primary'][1]}")
                for (start, end), info in reply.items()]

    async def refresh_slots(self) -> None:
        """Read the slot map again now, whether or not a command has failed since."""
        try:
            await self.nodes_manager.initialize()
        except RedisError:
            raise
        except RedisClusterException as exc:
            raise ClusterUnreachable(f"no usable slot map: {exc}") from exc


class _HiredisPacking:
    """Commands packed by hiredis (C) instead of redis-py's asyncio client's Python loop, as
    redis-py's own synchronous client does when hiredis is installed: the same bytes, about a
    tenth of the CPU (a reports script call of a hundred arguments: ~70 µs in Python, ~8 µs
    in C). Every command a hub sends is packed here, so this is a good part of its CPU."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):  # "CONFIG GET" and the like: the words go as separate arguments
            args = tuple(args[0].encode().split()) + args[1:]
        elif b" " in args[0]:
            args = tuple(args[0].split()) + args[1:]
        try:
            return [hiredis.pack_command(args)]
        except TypeError as exc:  # a value redis-py refuses too (None, a bool)
            raise DataError(str(exc)) from None


class _WriteInTurn:
    """redis-py's send_packed_command, waiting (up to socket_timeout) only when the socket
    did not take the whole command at once. redis-py waits with asyncio.wait_for, which on
    Python 3.11 makes a task of every write, that is of every command, and waits a turn of
    the event loop for it even when the bytes went out at once: CPU and latency on every
    round trip to Redis. The same steps otherwise, and the same errors: a write that times
    out or fails drops the connection and raises redis-py's TimeoutError or ConnectionError
    (a connection lost under a write that went out whole is found by the read that follows)."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected:
            connect = getattr(self, "connect_check_health", None)
            await (connect(check_health=False) if connect is not None else self.connect())
        if check_health:
            await self.check_health()
        try:
            if isinstance(command, str):
                command = command.encode()
            if isinstance(command, bytes):
                command = [command]
            self._writer.writelines(command)
            # Nearly always the socket took every byte at once: nothing to wait for, and no
            # deadline to set and cancel (asyncio.timeout was a twentieth of a hello's CPU).
            if self._writer.transport.get_write_buffer_size():
                if self.socket_timeout:
                    async with asyncio.timeout(self.socket_timeout):
                        await self._writer.drain()
                else:
                    await self._writer.drain()
        except asyncio.TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await self.disconnect(nowait=True)
            err_no, errmsg = ("UNKNOWN", exc.args[0]) if len(exc.args) == 1 else (exc.args[0], exc.args[1])
            raise RedisConnectionError(f"Error {err_no} while writing to socket. {errmsg}.") from exc
        except BaseException:
            # A write cut short cannot be resumed: the connection goes (as redis-py does).
            await self.disconnect(nowait=True)
            raise


class _ReadInBulk:
    """Read a pipeline's replies in one go: redis-py reads them one by one, each under a
    deadline of its own (a timer set and cancelled per reply, four for a hello's pipeline).
    Here one deadline covers them all, and replies already in hand are taken without one.
    Errors are redis-py's: a reply that is an error stays in its place (ResponseError), a
    connection that fails or times out is dropped and raises ConnectionError or TimeoutError."""

    async def read_replies(self, n: int) -> list[Any]:
        parser = self._parser
        if not isinstance(parser, _AsyncHiredisParser) or str(self.protocol) == "3":
            return [await self._read_or_error() for _ in range(n)]
        if not parser._connected:
            raise RedisConnectionError("Connection closed by server.")
        reader = parser._reader
        replies: list[Any] = []
        try:
            while (reply := reader.gets()) is not NOT_ENOUGH_DATA:
                replies.append(reply)
                if len(replies) == n:
                    break
            else:
                async with asyncio.timeout(self.socket_timeout):
                    while len(replies) < n:
                        await parser.read_from_socket()
                        while len(replies) < n and (reply := reader.gets()) is not NOT_ENOUGH_DATA:
                            replies.append(reply)
        except asyncio.TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError(f"Timeout reading from {self._host_error()}") from None
        except OSError as exc:
            await self.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while reading from {self._host_error()} : {exc.args}") from None
        except BaseException:
            await self.disconnect(nowait=True)
            raise
        for reply in replies:  # LOADING and the like: the connection is no good (as redis-py)
            if isinstance(reply, RedisConnectionError) or (isinstance(reply, list) and reply
                                                           and isinstance(reply[0], RedisConnectionError)):
                await self.disconnect(nowait=True)
                raise reply if isinstance(reply, RedisConnectionError) else reply[0]
        if self.health_check_interval:
            self.next_health_check = asyncio.get_running_loop().time() + self.health_check_interval
        return replies

    async def _read_or_error(self) -> Any:
        try:
            return await self.read_response()
        except ResponseError as exc:
            return exc


def packed_in_c(connection_class: type) -> type:
    """A connection class of the pool's kind (TCP, unix socket, TLS) that packs with hiredis,
    writes without a task per command and reads a pipeline's replies in bulk."""
    return type(connection_class.__name__, (_HiredisPacking, _WriteInTurn, _ReadInBulk, connection_class), {})


class _LeanPipeline(Pipeline):
    """redis-py's pipeline with a short way for what the hub does nearly every time: a
    pipeline (or MULTI/EXEC) of commands with nothing watched, run once. redis-py's execute
    also goes through its observability hooks, HIMPORT preparation, a retry wrapper and a
    shielded release, a coroutine or a future each: together a third of a hello's CPU.
    The result is redis-py's: each reply through its response callback, errors in place
    (or the first raised), WatchError and EXECABORT as redis-py raises them, and one retry
    on a fresh connection after a connection error, as the pool's Retry(NoBackoff(), 1)."""

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = self.command_stack
        if (not stack or self.watching or self.connection is not None or self.scripts
                or any(EMPTY_RESPONSE in options or NEVER_DECODE in options for _, options in stack)):
            return await super().execute(raise_on_error)
        transaction = self.is_transaction or self.explicit_transaction
        self.command_stack, self.scripts, self.explicit_transaction = [], set(), False
        commands = [args for args, _ in stack]
        if transaction:
            commands = [("MULTI",), *commands, ("EXEC",)]
        pool = self.connection_pool
        conn = await pool.get_connection()
        try:
            try:
                replies = await self._round_trip(conn, commands)
            except RedisConnectionError:
                await conn.disconnect()
                replies = await self._round_trip(conn, commands)
            if transaction:
                replies = await _unwrap_transaction(self, conn, stack, replies)
        finally:
            # Shielded as redis-py's reset does: a caller cancelled here (its socket closed)
            # must not leave the connection counted in use for ever.
            if not (isinstance(pool, _Pool) and pool.release_nowait(conn)):
                await asyncio.shield(pool.release(conn))
        if raise_on_error:
            self.raise_first_error(stack, replies)
        callbacks = self.response_callbacks
        results = []
        for (args, options), reply in zip(stack, replies):
            if not isinstance(reply, Exception) and args[0] in callbacks:
                options.pop("keys", None)
                reply = callbacks[args[0]](reply, **options)
                if inspect.isawaitable(reply):
                    reply = await reply
            results.append(reply)
        return results

    @staticmethod
    async def _round_trip(conn: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
        await conn.send_packed_command(conn.pack_commands(commands))
        return await conn.read_replies(len(commands))


async def _unwrap_transaction(pipe: Pipeline, conn: Any, stack: list[Any], replies: list[Any]) -> list[Any]:
    """MULTI, each command's QUEUED and EXEC's replies made into the commands' results, as
    redis-py's _execute_transaction does."""
    multi, *queued, done = replies
    errors: list[tuple[int, Exception]] = []
    if isinstance(multi, ResponseError):
        errors.append((0, multi))
    for i, (reply, (args, _)) in enumerate(zip(queued, stack)):
        if isinstance(reply, ResponseError):
            pipe.annotate_exception(reply, i + 1, args)
            errors.append((i, reply))
    if isinstance(done, ResponseError):  # EXECABORT: the first queuing error says why
        if errors:
            raise errors[0][1] from done
        raise done
    if done is None:
        raise WatchError("Watched variable changed.")
    results = list(done)
    for i, error in errors:
        results.insert(i, error)
    if len(results) != len(stack):
        await conn.disconnect()
        raise ResponseError("Wrong number of response items from pipeline execution")
    return results


class _LeanRedis(Redis):
    """redis-py's client whose pipelines take the short way (_LeanPipeline)."""

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _LeanPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


def publish(target: Any, channel: str, message: bytes) -> Any:
    """PUBLISH on a single Redis, SPUBLISH on a cluster, to a client or a pipeline (the
    cluster's pipelines refuse PUBLISH; SPUBLISH goes with the channel's slot, so in a
    transaction the channel must carry the tag of the transaction's keys)."""
    if is_cluster(target):
        return target.spublish(channel, message)
    return target.publish(channel, message)


class Lua:
    """A Lua script sent by its SHA1 (EVALSHA), not its text (EVAL) every time: the text of
    the reports' script is most of the bytes a hello or a close sends, and Redis hashes it
    on every EVAL. Redis forgets its scripts when it restarts: a call it does not know runs
    again by its text (EVAL, which also loads it). Unlike redis-py's register_script, whose
    pipelines ask Redis which scripts it has (SCRIPT EXISTS) before every execute, this adds
    no round trip."""

    __slots__ = ("text", "sha")
    known: "list[Lua]" = []  # every script of the process (load_scripts)

    def __init__(self, text: str):
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()
        Lua.known.append(self)

    async def __call__(self, redis: AnyRedis, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            return await redis.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await redis.execute_command("EVAL", self.text, len(keys), *keys, *args)

    def queue_on(self, pipe: Any, keys: Sequence[Any], args: Sequence[Any]) -> None:
        """Queue the call on a pipeline the caller runs with :func:`execute`."""
        _queued.setdefault(pipe, []).append((len(pipe), self, keys, args))
        pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)


# KEYS: a sorted set of work scored by when each item is due; ARGV: now, lease end, limit.
# Lease by rescoring: the due items move to the lease's end in the same step, so exactly one
# caller takes each, and one that dies leaves it to come due again when the lease runs out.
LEASE_DUE = Lua("""
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member) end
return due
""")


async def lease_due(redis: AnyRedis, key: str, now: float, until: float, limit: int) -> list[bytes]:
    """Take the items of key due by now (at most limit), leased until ``until``: the one
    lease helper (chat/timers.py's deadlines, transcripts/outbox.py's mails)."""
    return await LEASE_DUE(redis, [key], [repr(now), repr(until), limit])


_queued: "weakref.WeakKeyDictionary[Any, list[tuple[int, Lua, Sequence[Any], Sequence[Any]]]]" = weakref.WeakKeyDictionary()


async def load_scripts(redis: AnyRedis) -> None:
    """Give Redis every script now (SCRIPT LOAD; on a cluster, every primary), so that no
    EVALSHA of a running hub meets NOSCRIPT: a script Redis did not know runs again by its
    text after the rest of its pipeline (``execute``), out of order, and a close's claim
    then ran before the removal that frees the agent's slot (it found the agent full)."""
    for script in Lua.known:
        await redis.script_load(script.text)


async def execute(redis: AnyRedis, pipe: Any, raise_on_error: bool = True, batcher: Any = None) -> list[Any]:
    """Run a pipeline with :class:`Lua` calls queued on it: those Redis did not know run again
    by their text once the pipeline is done (only after Redis lost its scripts), and their
    results take their places. With raise_on_error, the first error left is raised. With a
    batcher (chat.batching.PipelineBatcher) the pipeline shares a round trip with others
    (not on a cluster, and not for a transaction)."""
    calls = _queued.pop(pipe, [])
    if batcher is not None and isinstance(pipe, _LeanPipeline) and not pipe.is_transaction and not pipe.watching:
        results = await batcher.execute(pipe)
    else:
        results = await pipe.execute(raise_on_error=False)
    for index, script, keys, args in calls:
        if index < len(results) and isinstance(results[index], NoScriptError):
            try:
                results[index] = await redis.execute_command("EVAL", script.text, len(keys), *keys, *args)
            except RedisError as exc:
                results[index] = exc
    if raise_on_error:
        for result in results:
            if isinstance(result, Exception):
                raise result
    return results
