"""The chat core's keyspace on a real Redis Cluster (the session's three masters of Debian's
redis-server 7, tests/support/cluster.py): every key of one chat hashes to one slot, the
routing keys to another, and each Lua script and transaction of the chat core runs there.
The hubs themselves on the cluster: tests/test_cluster_hubs.py."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import msgpack
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from chat import keys, lifecycle, timers
from chat.bus import make_bus
from chat.chatlog import ChatLog, read_log
from chat.chats import load_chat, new_chat_id
from chat.config import load_config
from chat.duties import VISITOR_GONE_SCRIPT
from chat.presence import Presence
from chat.queue import AgentSkills, write_agent
from chat.runtime import Runtime
from chat.settings import Settings
from chat.store import CLUSTER_CONNECTIONS, redis_client
from tests.support.waiting import eventually


@pytest.fixture
def cluster(redis_cluster) -> list[int]:
    """The session's cluster (tests/support/cluster.py): the ports of its nodes."""
    return redis_cluster.ports


@pytest.fixture
async def rc(cluster):
    client = await RedisCluster(host="127.0.0.1", port=cluster[0]).initialize()
    yield client
    await client.aclose()


def chat_keys(chat_id: str) -> list[str]:
    return [keys.chat(chat_id), keys.chat_log(chat_id), keys.chat_client_ids(chat_id), keys.chat_ticket(chat_id)]


def routing_keys(lang: str) -> list[str]:
    return [keys.ROUTE, keys.QUEUE_ALL, keys.AGENTS, keys.AGENTS_SEEN, keys.VISITORS_SEEN, keys.TIMERS, keys.STATS,
            keys.QUEUE_HISTORY, keys.queue(lang), keys.queue(lang, "billing"), keys.agent_chats("sam"),
            keys.emergency_guard("x")]


async def test_every_key_of_a_chat_is_in_one_slot_and_routing_in_another(rc, lang):
    """CLUSTER KEYSLOT: one slot for all of a chat's keys, one for all routing keys."""
    chat_slots = {await rc.cluster_keyslot(k) for k in chat_keys("AbC-123_xyz")}
    routing_slots = {await rc.cluster_keyslot(k) for k in routing_keys(lang)}
    assert len(chat_slots) == 1 and len(routing_slots) == 1


async def test_accounts_sessions_login_limits_and_canned_replies_share_one_slot(rc):
    """CLUSTER KEYSLOT: an account, the account list, a session, its user's sessions, the
    login counters and the canned replies hash to one slot (their transactions and the login
    script stay on one node)."""
    names = [keys.account("sam"), keys.ACCOUNTS, keys.session("s1"), keys.user_sessions("sam"),
             keys.login_attempts("p:sam:x"), keys.login_attempts("a:x"), keys.CANNED_REPLIES]
    assert len({await rc.cluster_keyslot(k) for k in names}) == 1


async def test_the_chat_core_scripts_and_transactions_run_on_a_cluster(rc, lang):
    """Open (a hello's writes: the chat's slot, then its place in line, Lua on {q}), append
    (Lua, one chat's slot), claim, requeue, transfer, agent gone, remove (Lua on {q}), timers
    and the presence sweep, all on Redis Cluster."""
    rt = Runtime(settings=Settings(), config=load_config(None), redis=rc, clock=lambda: 1.0)
    chat_id = new_chat_id()
    fields = {"status": "queued", "lang": lang, "plan": "free", "topic": "", "emergency": False, "created_at": "1",
              "arrived_at": "1", "score": "1", "visitor_msgs": 0}
    await lifecycle.open_chat(rt, chat_id, fields, 60)  # its visitor seen at 1.0, as its hello marks it
    assert (await load_chat(rc, chat_id))["lang"] == lang
    log = ChatLog(rc)
    assert (await log.append(chat_id, "visitor", "hello", 1.0, "c1"))[0] == 1
    assert (await log.append(chat_id, "visitor", "hello", 1.0, "c1"))[2] is False  # stored once
    assert [m["text"] for m in await read_log(rc, chat_id)] == ["hello"]

    queue = rt.queue
    for name in ("sam", "kim"):
        await write_agent(rc, name, {"name": name, "langs": [lang], "topics": [], "max_chats": 2, "status": "online"})
    assert await queue.claim(AgentSkills("sam", (lang,), (), 2), time.time()) == chat_id
    assert await queue.transfer(chat_id, "kim") == (True, "sam")
    assert await queue.requeue(chat_id)
    assert await rc.zscore(keys.queue(lang), chat_id) == 1.0
    assert await queue.claim(AgentSkills("kim", (lang,), (), 2), time.time()) == chat_id
    await Presence(rc).mark(keys.AGENTS_SEEN, "kim", 1.0)  # kim's socket last seen at 1.0, as the hub marks it
    assert await queue.agent_gone("kim", 2.0) == [chat_id]
    assert msgpack.unpackb(await rc.hget(keys.ROUTE, chat_id))["state"] == "queued"
    assert (await queue.remove(chat_id))["lang"] == lang

    await timers.schedule(rc, f"t-{lang}", chat_id, 5.0)
    assert (f"t-{lang}", chat_id) in [(k, c) for k, c, _ in await timers.pop_due(rc, 6.0)]
    gone = rc.register_script(VISITOR_GONE_SCRIPT)
    assert await gone(keys=[keys.VISITORS_SEEN], args=[chat_id, "2.0"]) == 1


async def test_chat_events_reach_a_subscriber_on_another_node(rc, cluster):
    """Pub/sub (the hubs' doorbell) crosses nodes: a subscriber on one node hears a publish on another."""
    chat_id = "evt-" + str(cluster[0])
    pubsub = rc.pubsub()
    await pubsub.subscribe(keys.chat_channel(chat_id))
    await eventually(lambda: pubsub.get_message(timeout=0.2), 10, message="the subscription")
    other = await RedisCluster(host="127.0.0.1", port=cluster[-1]).initialize()
    await other.publish(keys.chat_channel(chat_id), b"ding")

    async def heard():
        message = await pubsub.get_message(timeout=0.2)
        return message and message["type"] == "message" and message["data"] == b"ding"

    assert await eventually(heard, 10, message="the event on another node")
    await pubsub.aclose()
    await other.aclose()


async def test_a_burst_beyond_the_cluster_pool_waits_for_connections(cluster):
    """More concurrent commands to one node than its pool holds all succeed: the burst waits, as on a single Redis."""
    client = redis_client("redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in cluster))
    try:
        burst = CLUSTER_CONNECTIONS * 3
        tag = secrets.token_hex(4)
        names = [f"burst:{{{tag}}}:{i}" for i in range(burst)]
        await client.set(names[0], 0)  # the slot map is read: the burst's commands all go at once
        assert await asyncio.gather(*(client.set(name, i) for i, name in enumerate(names))) == [True] * burst
        assert [int(v) for v in await client.mget(names)] == list(range(burst))
    finally:
        await client.aclose()



async def test_a_burst_of_pipelines_beyond_the_cluster_pool_waits_for_connections(redis_cluster):
    """More concurrent pipelines to one node than its pool holds all succeed on the pool's connections: they wait."""
    client = redis_client(redis_cluster.url)

    async def write(name: str, i: int) -> list[Any]:
        pipe = client.pipeline(transaction=False)
        pipe.set(name, i)
        pipe.get(name)
        return await pipe.execute()

    burst = CLUSTER_CONNECTIONS * 3
    tag = secrets.token_hex(4)
    names = [f"pipes:{{{tag}}}:{i}" for i in range(burst)]
    admin = Redis(port=redis_cluster.master_of_key(names[0]))
    try:
        await client.set(names[0], 0)
        before = await _connections_received(admin)
        assert await asyncio.gather(*(write(name, i) for i, name in enumerate(names))) == [
            [True, str(i).encode()] for i in range(burst)]
        assert await _connections_received(admin) - before <= CLUSTER_CONNECTIONS
    finally:
        await client.aclose()
        await admin.aclose()

def _on_other_masters(redis_cluster) -> tuple[str, str]:
    """Two keys whose slots two different masters own."""
    while True:
        a, b = (f"apart:{{{secrets.token_hex(4)}}}" for _ in range(2))
        if redis_cluster.master_of_key(a) != redis_cluster.master_of_key(b):
            return a, b


async def _connections_received(node: Redis) -> int:
    return int((await node.info("stats"))["total_connections_received"])


async def _calls(node: Redis, command: str) -> int:
    return int((await node.info("commandstats")).get(f"cmdstat_{command}", {}).get("calls", 0))


async def _blocked(node: Redis) -> bool:
    return int((await node.info("clients"))["blocked_clients"]) >= 1


async def test_a_pipeline_retry_leaves_a_command_in_flight_on_another_node_alone(redis_cluster):
    """A pipeline that lost its connection retries without cutting off (and so resending) a command in flight elsewhere."""
    client = redis_client(redis_cluster.url)
    a, b = _on_other_masters(redis_cluster)
    admin_a, admin_b = Redis(port=redis_cluster.master_of_key(a)), Redis(port=redis_cluster.master_of_key(b))
    try:
        await client.set(a, 0)  # a pooled connection to a's node, which the server then drops
        sent = await _calls(admin_b, "blpop")
        waiting = asyncio.create_task(client.blpop([b], timeout=20))  # in flight on b's node
        await eventually(lambda: _blocked(admin_b), 10, message="the BLPOP in flight")
        await admin_a.execute_command("CLIENT KILL TYPE normal")
        pipe = client.pipeline(transaction=False)
        pipe.set(a, 1)
        pipe.get(a)
        assert await pipe.execute() == [True, b"1"]
        await admin_b.rpush(b, b"x")
        assert tuple(await waiting) == (b.encode(), b"x")
        assert await _calls(admin_b, "blpop") == sent + 1
    finally:
        await client.aclose()
        await admin_a.aclose()
        await admin_b.aclose()


async def test_the_sharded_bus_checks_the_slot_map_without_reconnecting_the_client(redis_cluster):
    """The bus's topology check every few seconds reads the slot map without recycling the client's connections."""
    client = redis_client(redis_cluster.url)
    bus = make_bus(client)
    key = f"steady:{{{secrets.token_hex(4)}}}"
    admins = [Redis(port=port) for port in redis_cluster.ports]
    admin = admins[redis_cluster.ports.index(redis_cluster.master_of_key(key))]

    async def slot_map_reads() -> int:
        stats = [await node.info("commandstats") for node in admins]
        return sum(int(s.get("cmdstat_cluster|slots", {}).get("calls", 0)) for s in stats)

    try:
        await bus.start()
        await bus.subscribe(keys.chat_channel(key), lambda data: None)
        await client.set(key, 1)  # a pooled connection to the key's node
        reads = await slot_map_reads()
        before = await _connections_received(admin)
        await eventually(lambda: _at_least(slot_map_reads(), reads + 2), 20, message="two topology checks",
                         interval=0.2)
        assert await client.get(key) == b"1"
        assert await _connections_received(admin) == before
    finally:
        await bus.stop()
        await client.aclose()
        for node in admins:
            await node.aclose()


async def _at_least(count: Any, floor: int) -> bool:
    return await count >= floor
