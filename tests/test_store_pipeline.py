"""The hub's Redis client (chat/store.py) on the session's real Redis: its pipelines take a
short way (one write, the replies read in bulk) and must give what redis-py's own give, reply
for reply, errors and transactions included; and the bus sends the subscriptions asked for in
one turn of the event loop together."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from chat.bus import Bus
from chat.store import redis_client


def fill(pipe, key: str) -> None:
    """The same commands on any pipeline: replies of every shape, and one error."""
    pipe.set(key + ":s", "v")
    pipe.hset(key + ":h", mapping={"a": "1", "b": "2"})
    pipe.hgetall(key + ":h")
    pipe.zadd(key + ":z", {"m": 1.5})
    pipe.zrange(key + ":z", 0, -1, withscores=True)
    pipe.incr(key + ":s")  # not an integer: an error in its place
    pipe.get(key + ":s")
    pipe.expire(key + ":s", 60)


@pytest.fixture
async def hub_redis(redis_url):
    """The client every hub process uses."""
    client = redis_client(redis_url)
    yield client
    await client.aclose()


@pytest.mark.parametrize("transaction", [False, True])
async def test_a_pipeline_gives_what_redis_pys_gives(hub_redis, redis_url, transaction):
    """Every reply, through its callback, equals redis-py's own pipeline's; errors stay in place."""
    ours, theirs = "t:" + secrets.token_hex(4), "t:" + secrets.token_hex(4)
    plain = Redis.from_url(redis_url)
    try:
        async with hub_redis.pipeline(transaction=transaction) as pipe:
            fill(pipe, ours)
            got = await pipe.execute(raise_on_error=False)
        async with plain.pipeline(transaction=transaction) as pipe:
            fill(pipe, theirs)
            expected = await pipe.execute(raise_on_error=False)
    finally:
        await plain.aclose()
    assert [type(r) for r in got] == [type(r) for r in expected]
    assert [r for r in got if not isinstance(r, Exception)] == [r for r in expected if not isinstance(r, Exception)]
    assert isinstance(got[5], ResponseError)


async def test_a_pipeline_raises_its_first_error_and_runs_the_rest(hub_redis):
    """With raise_on_error, the first error is raised, naming its command; the others ran."""
    key = "t:" + secrets.token_hex(4)
    async with hub_redis.pipeline(transaction=False) as pipe:
        pipe.set(key, "x")
        pipe.incr(key)
        pipe.set(key + ":after", "y")
        with pytest.raises(ResponseError, match="Command # 2"):
            await pipe.execute()
    assert await hub_redis.get(key + ":after") == b"y"


async def test_a_transaction_with_a_refused_command_runs_nothing(hub_redis):
    """A command Redis refuses to queue aborts the whole MULTI/EXEC, as in redis-py."""
    key = "t:" + secrets.token_hex(4)
    async with hub_redis.pipeline(transaction=True) as pipe:
        pipe.set(key, "x")
        pipe.execute_command("SET", key)  # wrong number of arguments: refused when queued
        with pytest.raises(ResponseError):
            await pipe.execute()
    assert await hub_redis.get(key) is None


async def test_a_pipeline_after_redis_dropped_the_connection_runs_once_on_a_fresh_one(hub_redis, redis_url):
    """A pooled connection Redis closed meanwhile is replaced; the pipeline's commands run once."""
    key = "t:" + secrets.token_hex(4)
    pooled = await hub_redis.client_id()  # the pool's one idle connection, used again next
    other = Redis.from_url(redis_url)
    try:
        await other.client_kill_filter(_id=pooled)
    finally:
        await other.aclose()
    async with hub_redis.pipeline(transaction=False) as pipe:
        pipe.incr(key)
        pipe.get(key)
        assert await pipe.execute() == [1, b"1"]
    assert await hub_redis.client_id() != pooled


async def test_channels_asked_for_in_one_turn_are_subscribed_together_and_each_delivers(hub_redis):
    """Fifty subscriptions started at once are all confirmed and each gets its own messages."""
    bus = Bus(hub_redis)
    await bus.start()
    try:
        got: dict[str, list[bytes]] = {}
        channels = [f"t:{secrets.token_hex(4)}:{i}" for i in range(50)]
        await asyncio.gather(*(bus.subscribe_soon(c, lambda ch, data: got.setdefault(ch, []).append(data))
                               for c in channels))
        for c in channels:
            await hub_redis.publish(c, c.encode())
        deadline = asyncio.get_running_loop().time() + 10
        while len(got) < len(channels) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert got == {c: [c.encode()] for c in channels}
    finally:
        await bus.stop()


async def test_a_channel_dropped_before_its_subscription_went_out_is_not_subscribed(hub_redis):
    """Subscribing and unsubscribing in the same turn leaves Redis without that subscription."""
    bus = Bus(hub_redis)
    await bus.start()
    try:
        channel, kept = "t:" + secrets.token_hex(4), "t:" + secrets.token_hex(4)
        handler = lambda ch, data: None  # noqa: E731
        dropped = bus.subscribe_soon(channel, handler)
        await bus.unsubscribe(channel, handler)
        await dropped
        await bus.subscribe(kept, handler)  # sent after: once it is confirmed, the first batch is done too
        counts = dict(await hub_redis.pubsub_numsub(channel, kept))
        assert counts == {channel.encode(): 0, kept.encode(): 1}
    finally:
        await bus.stop()


async def test_the_same_handler_asking_twice_in_one_turn_is_confirmed_twice(hub_redis):
    """Two sockets watching one chat at once (one handler, asked twice) both get their confirmation."""
    bus = Bus(hub_redis)
    await bus.start()
    try:
        channel = "t:" + secrets.token_hex(4)
        got: list[bytes] = []
        handler = lambda ch, data: got.append(data)  # noqa: E731
        await asyncio.wait_for(asyncio.gather(bus.subscribe_soon(channel, handler), bus.subscribe_soon(channel, handler)), 10)
        await hub_redis.publish(channel, b"once")
        deadline = asyncio.get_running_loop().time() + 10
        while not got and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert got == [b"once"]
    finally:
        await bus.stop()
