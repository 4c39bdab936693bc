"""Redis goes away mid-chat and comes back (same address, append-only file with fsync
always): hubs say 503, refuse what they cannot store with `unavailable` (never a false
acknowledgement), and afterwards everything works again with nothing acknowledged lost."""

from __future__ import annotations

import asyncio
import time

import msgpack
import pytest
from redis.asyncio import Redis

from chat import keys
from chat.store import redis_client
from chat.config import parse_config
from tests.support.clients import agent, visitor
from tests.support.http import health_status, http
from tests.support.redis import RestartableRedis
from tests.support.servers import free_port, hub_env, HubProcess, TEST_CONFIG
from tests.support.waiting import wait_until


GRACE = parse_config(TEST_CONFIG).timing
OUTAGE = max(GRACE.agent_grace, GRACE.visitor_grace) + 2 * GRACE.heartbeat  # longer than any grace


@pytest.fixture(scope="module", params=["tcp", "unix"])
def flaky_redis(request, data_root):
    server = RestartableRedis(data_root / f"flaky-redis-{request.param}", free_port() if request.param == "tcp" else None)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def flaky_hub(flaky_redis, data_root, test_config_path):
    where = data_root / f"flaky-hub-{flaky_redis.data_dir.name}"
    hub = HubProcess(hub_env(flaky_redis.url, where, test_config_path), where)
    hub.start()
    yield hub
    hub.terminate()


@pytest.fixture
async def flaky_rds(flaky_redis):
    """A client with the hubs' own connection policy (one retry on a stale connection)."""
    client = redis_client(flaky_redis.url)
    yield client
    await client.aclose()


async def outage(redis: RestartableRedis, hub: HubProcess, at_least: float = 0.0):
    """Crash Redis, wait until the hub reports 503, and return a function that restarts it
    (once it has been down ``at_least`` seconds) and waits for 200."""
    redis.crash()
    crashed = time.monotonic()
    await asyncio.to_thread(wait_until, lambda: health_status(hub.base_url) == 503, 15, 0.05, "healthz 503")

    async def back() -> None:
        # The outage must outlast the grace periods (that is the case under test): wait for that.
        await asyncio.to_thread(wait_until, lambda: time.monotonic() - crashed > at_least, at_least + 5, 0.05,
                                "the outage to outlast the grace periods")
        redis.start()
        await asyncio.to_thread(wait_until, lambda: health_status(hub.base_url) == 200, 15, 0.05, "healthz 200")

    return back


async def test_healthz_is_503_while_redis_is_down_and_200_when_it_is_back(flaky_hub, flaky_redis):
    """/healthz answers 503 with a reason while Redis is down, 200 once it is back."""
    assert health_status(flaky_hub.base_url) == 200
    back = await outage(flaky_redis, flaky_hub)

    status, body = http(flaky_hub.base_url + "/healthz")
    assert status == 503 and b"redis" in body
    await back()


async def _agent_after_outage(hub, rds, username, langs):
    """Like any client after an outage, retry a connect that was refused with `unavailable`
    (the previous test has just restarted Redis under this hub)."""
    import websockets

    for attempt in range(3):
        try:
            client, _ = await agent(hub, rds, username, langs, name="Sam", create=attempt == 0)
            return client
        except websockets.ConnectionClosed:
            if attempt == 2:
                raise


async def test_chat_survives_a_redis_crash_without_losing_or_inventing_messages(flaky_hub, flaky_redis, flaky_rds, lang):
    """Messages sent during the outage get `unavailable`, never an ack; afterwards the same
    sockets chat on, each acknowledged message is stored exactly once, in order, and the
    chat is still with its agent."""
    hub, rds = flaky_hub, flaky_rds
    sam = await _agent_after_outage(hub, rds, f"a-{lang}", [lang])
    ada, welcome = await visitor(hub, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    await ada.expect("assigned")
    acked: list[str] = []
    for i in range(3):
        await ada.send(type="message", text=f"before {i}", client_id=f"b{i}")
        await ada.expect("message", client_id=f"b{i}")
        acked.append(f"b{i}")
    await sam.send(type="message", chat_id=chat_id, text="agent before", client_id="ab")
    await sam.expect("message", client_id="ab")
    acked.append("ab")

    back = await outage(flaky_redis, hub, at_least=OUTAGE)
    await ada.send(type="message", text="during the outage", client_id="d1")
    refusal = await ada.expect("error", timeout=20)
    assert refusal["code"] == "unavailable"
    await sam.send(type="message", chat_id=chat_id, text="agent during", client_id="ad1")
    assert (await sam.expect("error", timeout=20))["code"] == "unavailable"
    await back()

    # The same sockets go on. The visitor resends what was refused (same client_id).
    await ada.send(type="message", text="during the outage", client_id="d1")
    ack = await ada.expect("message", client_id="d1")
    acked.append("d1")
    assert (await sam.expect("message", chat_id=chat_id, client_id="d1"))["seq"] == ack["seq"]
    await sam.send(type="message", chat_id=chat_id, text="agent after", client_id="aa")
    assert (await ada.expect("message", client_id="aa"))["from"] == "agent"
    acked.append("aa")
    assert not [f for f in ada.received + sam.received if f.get("client_id") in ("ad1",) and f["type"] == "message"]

    log = [msgpack.unpackb(raw) for raw in await rds.lrange(keys.chat_log(chat_id), 0, -1)]
    assert [m["client_id"] for m in log] == acked
    assert [m["seq"] for m in log] == list(range(1, len(acked) + 1))
    route = msgpack.unpackb(await rds.hget(keys.ROUTE, chat_id))
    assert route["state"] == "active" and route["agent"] == f"a-{lang}"
    assert (await rds.hget(keys.chat(chat_id), "status")) == b"active"
    agents = msgpack.unpackb(await rds.hget(keys.AGENTS, f"a-{lang}"))
    assert agents["status"] == "online"
    await ada.close()
    await sam.close()


async def test_message_published_while_the_hub_resubscribes_still_arrives(flaky_hub, flaky_redis, flaky_rds, lang):
    """A message stored the moment Redis is back, before the hub's pub/sub has resubscribed,
    still reaches the agent (the bus catches listeners up from the log)."""
    hub, rds = flaky_hub, flaky_rds
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, _ = await visitor(hub, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    back = await outage(flaky_redis, hub)
    flaky_redis.start()
    # Written straight into Redis at once, as another hub would: nobody is subscribed yet.
    writer = Redis.from_url(flaky_redis.url)
    from chat.chatlog import ChatLog

    seq, _, _ = await ChatLog(writer).append(chat_id, "visitor", "written while you were away", 1.0, "early")
    await writer.aclose()
    got = await sam.expect("message", chat_id=chat_id, client_id="early", timeout=20)
    assert got["seq"] == seq == 1
    assert (await ada.expect("message", client_id="early", timeout=20))["seq"] == 1
    await asyncio.to_thread(wait_until, lambda: health_status(hub.base_url) == 200, 15, 0.05, "healthz 200")
    del back
    await ada.close()
    await sam.close()
