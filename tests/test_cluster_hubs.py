"""Two hubs on a real Redis Cluster (three masters of Debian's redis-server 7, one replica
each): REDIS_URL=redis+cluster://... makes every process a cluster client, keys are routed by
slot and the hubs' pub/sub is sharded."""

from __future__ import annotations

import json
import re

import pytest

from agents.accounts import save_account
from chat import frames, keys
from chat.store import redis_client
from tests.clients import agent, visitor
from tests.dashboard_helpers import arequest, make_account, session_cookie
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


async def test_the_visitor_resumes_on_the_other_hub_after_its_hub_is_killed(redis_cluster, cluster_hubs, crds,
                                                                             data_root, test_config_path, lang):
    """Visitor's hub SIGKILLed mid-chat: the visitor resumes on another hub with every
    acknowledged message, and the agent hears what it writes next."""
    doomed = HubProcess(hub_env(redis_cluster.url, data_root / f"doomed-{lang}", test_config_path),
                        data_root / f"doomed-{lang}").start()
    try:
        _, two = cluster_hubs
        sam, _ = await agent(two, crds, f"a-{lang}", [lang])
        ada, welcome = await visitor(doomed, lang)
        chat_id = (await sam.expect("assigned"))["chat_id"]
        for i in range(3):
            await ada.send(type="message", text=f"v{i}", client_id=f"v{i}")
            await ada.expect("message", client_id=f"v{i}")
        doomed.kill()
        back, again = await visitor(two, lang, resume=welcome["resume"], last_seq=1)
        assert again["chat_id"] == chat_id
        assert [m["text"] for m in await back.messages(2)] == ["v1", "v2"]
        await back.send(type="message", text="after the crash", client_id="v3")
        texts = [(await sam.expect("message", chat_id=chat_id))["text"] for _ in range(4)]
        assert texts == ["v0", "v1", "v2", "after the crash"]
    finally:
        doomed.kill()


async def test_a_password_change_ends_the_agents_socket_on_another_hub(cluster_hubs, crds, lang):
    """A new password (written from anywhere) ends the agent's sessions; its socket on a hub closes at once."""
    _, two = cluster_hubs
    username = f"a-{lang}"
    sam, _ = await agent(two, crds, username, [lang])
    await save_account(crds, username, "a-brand-new-password", langs=[lang])
    assert await sam.closed_code() == frames.CLOSE_POLICY
    assert not await crds.exists(keys.user_sessions(username))


async def test_canned_replies_saved_on_one_hub_are_listed_on_the_other(cluster_hubs, crds, lang):
    """A supervisor's canned reply saved through hub one is listed to an agent on hub two."""
    one, two = cluster_hubs
    cookie = await session_cookie(one.base_url, await make_account(crds, f"s-{lang}", lang, role="supervisor"))
    page = await arequest(one.base_url, "GET", "/supervisor", headers={"Cookie": cookie})
    token = re.search(r'data-csrf="([^"]+)"', page.text).group(1)
    saved = await arequest(one.base_url, "PUT", f"/api/canned/hi{lang}", json.dumps({"text": "Hello!"}),
                           {"Cookie": cookie, "Content-Type": "application/json", "X-CSRF-Token": token})
    assert saved.status == 200
    agent_cookie = await session_cookie(two.base_url, await make_account(crds, f"a-{lang}", lang))
    listed = await arequest(two.base_url, "GET", "/api/canned", headers={"Cookie": agent_cookie})
    assert {"shortcut": f"hi{lang}", "text": "Hello!"} in listed.json()["replies"]


async def test_the_supervisor_snapshot_on_one_hub_counts_a_visitor_waiting_on_the_other(cluster_hubs, crds, lang):
    """GET /api/queue on hub two counts the visitor waiting on hub one."""
    one, two = cluster_hubs
    await agent(two, crds, f"a-{lang}", [lang], max_chats=1)
    served, _ = await visitor(one, lang)
    await served.expect("assigned")
    ada, _ = await visitor(one, lang)
    await ada.expect("queued")
    cookie = await session_cookie(two.base_url, await make_account(crds, f"s-{lang}", lang, role="supervisor"))
    snap = (await arequest(two.base_url, "GET", "/api/queue", headers={"Cookie": cookie})).json()
    assert snap["waiting_by_lang"][lang] == 1
