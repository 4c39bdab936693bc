"""Two hubs on a real Redis Cluster (three masters of Debian's redis-server 7, one replica
each): REDIS_URL=redis+cluster://... makes every process a cluster client, keys are routed by
slot and the hubs' pub/sub is sharded."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess

import pytest
from redis import Redis as SyncRedis

from agents.accounts import save_account
from chat import frames, keys
from chat.chatlog import read_log
from chat.store import redis_client
from tests.support.clients import agent, create_agent, login_cookie, visitor
from tests.support.desk import chat_ticket
from tests.support.http import arequest
from tests.support.mail import customer_reply, SmtpServer
from tests.support.servers import hub_env, HubProcess, LIVECHAT
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def smtp_sink():
    """A real SMTP server (aiosmtpd) both hubs deliver to."""
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster_hubs(redis_cluster, data_root, test_config_path, smtp_sink):
    """Two `livechat serve` processes, both with REDIS_URL=redis+cluster://<every node>."""
    hubs = [HubProcess(hub_env(redis_cluster.url, data_root / f"cluster-hub{i}", test_config_path,
                               SMTP_URL=smtp_sink.url + "?starttls=never"),
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
    cookie = await asyncio.to_thread(login_cookie, one, await create_agent(crds, f"s-{lang}", [lang], role="supervisor"))
    page = await arequest(one.base_url, "GET", "/supervisor", headers={"Cookie": cookie})
    token = re.search(r'data-csrf="([^"]+)"', page.text).group(1)
    saved = await arequest(one.base_url, "PUT", f"/api/canned/hi{lang}", json.dumps({"text": "Hello!"}),
                           {"Cookie": cookie, "Content-Type": "application/json", "X-CSRF-Token": token})
    assert saved.status == 200
    agent_cookie = await asyncio.to_thread(login_cookie, two, await create_agent(crds, f"a-{lang}", [lang]))
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
    cookie = await asyncio.to_thread(login_cookie, two, await create_agent(crds, f"s-{lang}", [lang], role="supervisor"))
    snap = (await arequest(two.base_url, "GET", "/api/queue", headers={"Cookie": cookie})).json()
    assert snap["waiting_by_lang"][lang] == 1


async def agent_api(hub: HubProcess, username: str) -> dict[str, str]:
    """The headers of a signed-in agent's API calls (session cookie and CSRF token)."""
    cookie = await asyncio.to_thread(login_cookie, hub, username)
    page = await arequest(hub.base_url, "GET", "/agent", headers={"Cookie": cookie})
    token = re.search(r'data-csrf="([^"]+)"', page.text).group(1)
    return {"Cookie": cookie, "X-CSRF-Token": token, "Content-Type": "application/json", "Accept": "application/json"}


async def test_a_chat_becomes_a_ticket_mailed_answered_by_mail_and_by_an_agent_across_hubs(
        cluster_hubs, crds, smtp_sink, lang):
    """Nobody online: the visitor's message on hub one becomes a ticket with both mails; the
    customer's mailed reply (`livechat mail-in` on the cluster) lands in its thread; an agent
    answers through hub two's API, the answer is mailed and the ticket is listed as pending."""
    one, two = cluster_hubs
    email = f"ada-{lang}@example.org"
    ref, confirmation = await chat_ticket(one, smtp_sink, lang, email)
    inbox = await asyncio.to_thread(wait_until, lambda: [m for m in smtp_sink.to("support@example.org")
                                                         if ref in str(m.message["Subject"])], 30, 0.05, "the inbox mail")
    assert ref in str(confirmation["Subject"]) and inbox

    done = await asyncio.to_thread(
        subprocess.run, [LIVECHAT, "mail-in"], env=two.env,
        input=customer_reply(confirmation, email, "Here is the screenshot.").as_bytes(),
        capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stdout.decode().split() == ["stored", ref], done.stderr

    sam = await create_agent(crds, f"a-{lang}", [lang])
    headers = await agent_api(two, sam)
    answered = await arequest(two.base_url, "POST", f"/api/tickets/{ref}/messages",
                              json.dumps({"text": "Fixed in 4.2, please update."}), headers)
    assert answered.status == 201, answered.text
    answers = await asyncio.to_thread(wait_until, lambda: [m for m in smtp_sink.to(email)
                                                           if "Fixed in 4.2" in m.message.as_string()],
                                      30, 0.05, "the answer mailed")
    assert answers
    detail = (await arequest(one.base_url, "GET", f"/api/tickets/{ref}", headers=await agent_api(one, sam))).json()
    assert [m["kind"] for m in detail["messages"]][-2:] == ["mail_in", "mail_out"]
    assert detail["status"] == "pending"
    listed = (await arequest(one.base_url, "GET", "/api/tickets?status=pending", headers=headers)).json()
    assert ref in [t["ref"] for t in listed["tickets"]]


async def test_a_failover_of_the_chats_node_loses_no_acknowledged_message(redis_cluster, cluster_hubs, crds, lang):
    """CLUSTER FAILOVER promotes the replica of the master holding a chat's slot mid-chat:
    every message acknowledged before, during and after it is in the log and reaches the agent."""
    one, two = cluster_hubs
    sam, _ = await agent(two, crds, f"a-{lang}", [lang])
    ada, welcome = await visitor(one, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    acked = []

    async def say(i: int) -> None:
        """As the widget does: resend (same client_id, stored once) until acknowledged; during
        the failover Redis may answer `unavailable`, which asks exactly that."""
        for _ in range(10):
            await ada.send(type="message", text=f"v{i}", client_id=f"v{i}")
            try:
                await ada.expect("message", timeout=3, client_id=f"v{i}")
                break
            except AssertionError:
                continue
        else:
            raise AssertionError(f"v{i} was never acknowledged")
        acked.append(f"v{i}")

    for i in range(5):
        await say(i)
    master = redis_cluster.master_of_key(keys.chat_log(chat_id))
    replica = redis_cluster.replica_of(master)
    SyncRedis(port=replica).execute_command("CLUSTER FAILOVER")
    for i in range(5, 10):
        await say(i)
    await asyncio.to_thread(wait_until, lambda: redis_cluster.master_of_key(keys.chat_log(chat_id)) == replica,
                            30, 0.05, "the replica promoted")
    for i in range(10, 15):
        await say(i)
    assert [m["text"] for m in await read_log(crds, chat_id)] == acked
    heard = []
    while len(heard) < len(acked):
        heard.append((await sam.expect("message", timeout=30, chat_id=chat_id))["text"])
    assert heard == acked


@pytest.fixture
def patient_hubs(redis_cluster, cluster_hubs, data_root, test_config_path, lang):
    """Two hubs on the cluster whose sweeps give agents and visitors a minute of grace: the
    tests' usual 2-3 s would end the chat while the whole cluster is down (nobody could
    refresh their presence), which is not what the test below is about. The module's other
    hubs are stopped first: their sweeps would judge with the short graces."""
    for hub in cluster_hubs:
        hub.terminate()
    config = test_config_path.read_text()
    config = config.replace("agent_grace = 2.0", "agent_grace = 60").replace("visitor_grace = 3.0", "visitor_grace = 60")
    assert "agent_grace = 60" in config and "visitor_grace = 60" in config
    path = data_root / f"patient-{lang}.toml"
    path.write_text(config)
    hubs = [HubProcess(hub_env(redis_cluster.url, data_root / f"patient-{lang}-{i}", path),
                       data_root / f"patient-{lang}-{i}").start() for i in (1, 2)]
    yield hubs
    for hub in hubs:
        hub.terminate()


async def test_the_hubs_hear_each_other_again_after_every_node_was_down(redis_cluster, patient_hubs, crds, lang):
    """Every node of the cluster killed, then restarted: the bus keeps trying meanwhile, and the
    agent on hub two hears the visitor on hub one again (runs last: it stops the module's cluster)."""
    one, two = patient_hubs
    sam, _ = await agent(two, crds, f"a-{lang}", [lang])
    ada, _ = await visitor(one, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    await asyncio.to_thread(wait_until, redis_cluster.replicated, 30, 0.05, "every replica caught up")
    redis_cluster.kill_all()
    await asyncio.to_thread(wait_until, lambda: "cluster not reachable yet" in two.log_tail(50_000), 60, 0.05,
                            "hub two's bus finding no node to read the slot map from")
    await asyncio.to_thread(redis_cluster.restart_all)
    for _ in range(60):
        await ada.send(type="message", text="back", client_id="back")
        try:
            await ada.expect("message", timeout=2, client_id="back")
            break
        except AssertionError:
            continue
    else:
        raise AssertionError("the visitor's message was never acknowledged after the restart")
    assert (await sam.expect("message", timeout=60, chat_id=chat_id))["text"] == "back"
