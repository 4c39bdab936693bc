"""Two hubs on a real Redis Cluster (three masters of Debian's redis-server 7, one replica
each): REDIS_URL=redis+cluster://... makes every process a cluster client, keys are routed by
slot and the hubs' pub/sub is sharded."""

from __future__ import annotations

import pytest

from chat.store import redis_client
from tests.clients import agent, visitor
from tests.servers import HubProcess, hub_env


@pytest.fixture(scope="module")
def cluster_hubs(redis_cluster, data_root, test_config_path):
    """Two `livechat serve` processes, both with REDIS_URL=redis+cluster://<every node>."""
    hubs = [HubProcess(hub_env(redis_cluster.url, data_root / f"cluster-hub{i}", test_config_path),
                       data_root / f"cluster-hub{i}").start() for i in (1, 2)]
    yield hubs
    for hub in hubs:
        hub.terminate()


@pytest.fixture
async def crds(redis_cluster):
    """A cluster client from the hubs' own factory (chat.store.redis_client)."""
    client = redis_client(redis_cluster.url)
    yield client
    await client.aclose()


async def test_visitor_on_one_hub_and_agent_on_the_other_chat_in_order(cluster_hubs, crds, lang):
    """A visitor on hub one and an agent on hub two are paired; messages arrive both ways, in order."""
    one, two = cluster_hubs
    sam, _ = await agent(two, crds, f"a-{lang}", [lang])
    ada, welcome = await visitor(one, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    assert chat_id == welcome["chat_id"]
    await ada.expect("assigned")
    for i in range(20):
        await ada.send(type="message", text=f"v{i}", client_id=f"v{i}")
    assert [(await sam.expect("message", chat_id=chat_id))["text"] for _ in range(20)] == [f"v{i}" for i in range(20)]
    await sam.send(type="message", chat_id=chat_id, text="from hub two", client_id="a")
    assert (await ada.expect("message", seq=21))["text"] == "from hub two"
