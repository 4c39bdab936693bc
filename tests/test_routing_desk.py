"""Routing rules that need a desk of their own: a hub on its own Redis with a config where one
plan's schedule never opens (closed hours without touching the clock), one plan offers no
live chat, head starts are a fraction of a second, and handling-time data starts empty (ETA)."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from chat import keys
from chat.embedded_redis import EmbeddedRedis
from tests.support.clients import close_chat, Sockets, token
from tests.support.servers import hub_env, HubProcess

HEAD_START = 0.3  # visionary's head start here, in seconds

DESK_CONFIG = f"""
[plans.free]
head_start = 0
hours = "24/7"

[plans.plus]
head_start = 0.1
hours = "never"

[plans.basic]
head_start = 0.1
hours = "24/7"
live_chat = false

[plans.visionary]
head_start = {HEAD_START}
hours = "24/7"

[schedules.never]
tz = "Europe/Brussels"
days = []

[timing]
agent_grace = 1.0
visitor_grace = 1.0
heartbeat = 0.2
"""


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    """`livechat serve` with DESK_CONFIG on a Redis of its own."""
    root = tmp_path_factory.mktemp("desk")
    redis_server = EmbeddedRedis(root / "redis", fsync="no")
    redis_server.start()
    config = root / "desk.toml"
    config.write_text(DESK_CONFIG)
    process = HubProcess(hub_env(redis_server.url, root / "hub", config), root / "hub")
    process.start()
    process.redis_url = redis_server.url
    yield process
    process.terminate()
    redis_server.stop()


@pytest.fixture
async def desk_rds(desk):
    client = Redis.from_url(desk.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def sockets(desk_rds):
    """Sockets on the desk (accounts are stored in the desk's own Redis)."""
    opened = Sockets(desk_rds)
    yield opened
    await opened.close_all()


async def busy_agent(sockets, desk, lang: str):
    """An online agent with room for one chat, holding one: later chats wait in line."""
    sam, _ = await sockets.agent(desk, f"a-{lang}", [lang], max_chats=1)
    _, first = await sockets.visitor(desk, lang)
    await sam.expect("assigned", chat_id=first["chat_id"])
    return sam, first["chat_id"]


# --- ETA (first in this module: later tests hand chats out and close them, which records
# handling times; the desk's Redis starts with none) ------------------------------------------


async def test_eta_is_null_without_handling_time_data(desk, desk_rds, lang, sockets):
    """With no handled chats yet there is no average handling time: eta_s is null, not a guess."""
    await busy_agent(sockets, desk, lang)
    waiting, _ = await sockets.visitor(desk, lang)
    frame = await waiting.expect("queued", position=1)
    assert frame["eta_s"] is None


async def test_chats_handled_through_sockets_give_the_next_waiting_visitor_an_eta(desk, desk_rds, lang, sockets):
    """An agent takes and closes chats over its socket; a visitor who then waits gets a number."""
    sam, _ = await sockets.agent(desk, f"a-{lang}", [lang], max_chats=1)
    for n in range(2):
        ada, welcome = await sockets.visitor(desk, lang)
        await sam.expect("assigned", chat_id=welcome["chat_id"])
        await ada.send(type="message", text=f"question {n}", client_id=f"q{n}")
        await sam.expect("message", chat_id=welcome["chat_id"], client_id=f"q{n}")
        await close_chat(sam, welcome["chat_id"])
    _, current = await sockets.visitor(desk, lang)
    await sam.expect("assigned", chat_id=current["chat_id"])
    waiting, _ = await sockets.visitor(desk, lang)
    eta = (await waiting.expect("queued", position=1))["eta_s"]
    assert isinstance(eta, int) and eta >= 1


# --- hours -----------------------------------------------------------------------------


async def test_closed_hours_send_offline_right_after_welcome(desk, desk_rds, lang, sockets):
    """A plan outside its hours gets offline closed_hours even with a free agent online."""
    await sockets.agent(desk, f"a-{lang}", [lang])
    ada, welcome = await sockets.visitor(desk, lang, identity=token("plus"))
    assert (welcome["plan"], welcome["status"]) == ("plus", "offline")
    assert ada.received[-1] == welcome
    assert await ada.expect("offline") == {"type": "offline", "reason": "closed_hours"}
    assert await desk_rds.hget(keys.ROUTE, welcome["chat_id"]) is None


async def test_plan_without_live_chat_is_offline(desk, desk_rds, lang, sockets):
    """A plan with live_chat = false never queues: the visitor leaves a message instead."""
    await sockets.agent(desk, f"a-{lang}", [lang])
    ada, welcome = await sockets.visitor(desk, lang, identity=token("basic"))
    assert welcome["status"] == "offline"
    assert (await ada.expect("offline"))["reason"] == "closed_hours"


async def test_open_plan_is_served_on_the_same_desk(desk, desk_rds, lang, sockets):
    """The free plan (24/7 here) is queued and assigned as usual on that desk."""
    sam, _ = await sockets.agent(desk, f"a-{lang}", [lang])
    _, welcome = await sockets.visitor(desk, lang)
    assert welcome["status"] == "queued"
    await sam.expect("assigned", chat_id=welcome["chat_id"])


# --- bounded head start, end to end ---------------------------------------------------------


async def test_free_visitor_who_waited_past_the_head_start_beats_a_new_visionary(desk, desk_rds, lang, sockets):
    """Free has waited longer than visionary's head start when the visionary comes: free first."""
    sam, current = await busy_agent(sockets, desk, lang)
    free, free_welcome = await sockets.visitor(desk, lang)
    await free.expect("queued", position=1)
    arrived = float(await desk_rds.hget(keys.chat(free_welcome["chat_id"]), "arrived_at"))
    while time.time() <= arrived + HEAD_START + 0.05:  # the premise: free has waited past the head start
        await asyncio.sleep(0.02)
    vis, vis_welcome = await sockets.visitor(desk, lang, identity=token("visionary"))
    await vis.expect("queued", position=2)
    await close_chat(sam, current)
    assert (await sam.expect("assigned"))["chat_id"] == free_welcome["chat_id"]
