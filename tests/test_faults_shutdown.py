"""Graceful shutdown of a hub with its embedded Redis (no REDIS_URL, the default set-up):
SIGTERM closes every socket with 1012 (reconnect elsewhere), exits within a few seconds,
stops its redis-server, and everything it acknowledged is there after a restart."""

from __future__ import annotations

import asyncio
import socket

import msgpack
import pytest
from redis.asyncio import Redis

from chat import frames, keys
from tests.support.clients import agent, visitor
from tests.support.processes import alive, children, command_of
from tests.support.servers import hub_env, HubProcess
from tests.support.waiting import wait_until

EXIT_WITHIN = 10.0  # seconds; uvicorn's graceful shutdown is bounded at 5


@pytest.fixture
def embedded_hub(tmp_path, test_config_path):
    """A hub that starts (and must stop) its own redis-server under its data folder."""
    hub = HubProcess(hub_env(None, tmp_path / "hub", test_config_path), tmp_path / "hub")
    hub.start()
    yield hub
    hub.kill()


def redis_child(hub: HubProcess) -> int:
    found = [pid for pid in children(hub.process.pid) if "redis-server" in command_of(pid)]
    assert len(found) == 1, f"expected one redis-server child, found {found}"
    return found[0]


async def hub_redis(hub: HubProcess) -> Redis:
    return Redis.from_url(f"unix://{hub.data_dir.resolve() / 'redis.sock'}")


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


async def test_sigterm_closes_sockets_1012_exits_and_stops_its_redis(embedded_hub, lang):
    """SIGTERM: visitor and agent sockets get 1012, the process exits soon, no redis-server is left."""
    hub = embedded_hub
    rds = await hub_redis(hub)
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, _ = await visitor(hub, lang)
    await sam.expect("assigned")
    redis_pid = redis_child(hub)

    hub.process.terminate()
    assert await ada.closed_code() == frames.CLOSE_RESTART
    assert await sam.closed_code() == frames.CLOSE_RESTART
    assert refused(hub.port)  # no longer accepting
    assert await asyncio.to_thread(hub.process.wait, EXIT_WITHIN) is not None
    await asyncio.to_thread(wait_until, lambda: not alive(redis_pid), 10, 0.02, "redis-server to stop")
    await rds.aclose()


async def test_everything_acknowledged_before_sigterm_is_there_after_restart(embedded_hub, lang):
    """Messages acknowledged before SIGTERM survive; the ones in flight are stored once on resend."""
    hub = embedded_hub
    rds = await hub_redis(hub)
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, welcome = await visitor(hub, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    for i in range(5):
        await ada.send(type="message", text=f"acked {i}", client_id=f"k{i}")
        await ada.expect("message", client_id=f"k{i}")
    for i in range(20):  # in flight when the signal comes: some stored, maybe not acknowledged
        await ada.send(type="message", text=f"in flight {i}", client_id=f"f{i}")
    hub.process.terminate()
    assert await ada.closed_code() == frames.CLOSE_RESTART
    acked = [f["client_id"] for f in ada.received if f.get("type") == "message"]
    await rds.aclose()
    await asyncio.to_thread(hub.process.wait, EXIT_WITHIN)

    hub.start()  # same data folder: the embedded Redis reloads its append-only file
    rds = await hub_redis(hub)
    stored = [msgpack.unpackb(raw)["client_id"] for raw in await rds.lrange(keys.chat_log(chat_id), 0, -1)]
    assert stored[: len(acked)] == acked  # every acknowledged message, in order
    back, again = await visitor(hub, lang, resume=welcome["resume"], last_seq=len(acked))
    assert again["chat_id"] == chat_id
    for i in range(20):  # the widget resends what it has no acknowledgement for
        if f"f{i}" not in acked:
            await back.send(type="message", text=f"in flight {i}", client_id=f"f{i}")
            await back.expect("message", client_id=f"f{i}")
    stored = [msgpack.unpackb(raw)["client_id"] for raw in await rds.lrange(keys.chat_log(chat_id), 0, -1)]
    assert sorted(stored) == sorted([f"k{i}" for i in range(5)] + [f"f{i}" for i in range(20)])
    assert len(stored) == len(set(stored)) == 25
    await back.close()
    await rds.aclose()
    hub.terminate()


async def test_sigterm_stops_a_worker_promptly_even_right_after_it_started(redis_url, tmp_path, test_config_path):
    """`livechat worker` exits within seconds of SIGTERM, also when the signal lands while its
    duties are starting (a cancel swallowed by a Redis timeout once kept it alive for an hour)."""
    for round_ in range(3):
        worker = HubProcess(hub_env(redis_url, tmp_path / f"worker{round_}", test_config_path),
                            tmp_path / f"worker{round_}", command="worker")
        worker.start()
        await asyncio.to_thread(wait_until, lambda: "livechat worker running" in worker.log_tail(), 20, 0.02,
                                "the worker to run")
        worker.process.terminate()
        try:
            assert await asyncio.to_thread(worker.process.wait, EXIT_WITHIN) == 0
        finally:
            worker.kill()
