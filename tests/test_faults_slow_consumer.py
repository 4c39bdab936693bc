"""Slow consumers: a socket that stops reading is cut off with close code 1013 once its
bounded send queue is full, nobody else waits for it, and it resumes afterwards."""

from __future__ import annotations

import asyncio
import re

import msgpack
import pytest
import websockets

from chat import frames, keys
from chat.embedded_redis import EmbeddedRedis
from tests.support.clients import agent, Client, create_agent, login_cookie, visitor
from tests.support.rawsocket import RawSocket
from tests.support.servers import hub_env, HubProcess, TEST_CONFIG
from tests.support.waiting import wait_until

BIG = "\U0001F600" * frames.MAX_TEXT_CHARS  # 4000 characters, 16 KB of UTF-8 per frame
SMALL_RCVBUF = 4096
QUEUE_LIMIT = 256 * 1024  # the hub's send queue per socket here ([limits] send_queue_bytes)
CUT_LINE = "socket stopped reading; closing it"


@pytest.fixture(scope="module")
def flood_hub(data_root):
    """A hub of its own on a Redis of its own: the floods here are about send queues, not
    disk or presence, so this Redis fsyncs every second (the session's Redis stays quick for
    the other tests), an agent's grace period outlasts reading a backlog, and the send queue
    is small so that a few dozen big frames overflow it."""
    server = EmbeddedRedis(data_root / "flood-redis", fsync="everysec")
    server.start()
    config = data_root / "flood.toml"
    config.write_text(re.sub(r"agent_grace = [0-9.]+", "agent_grace = 60", TEST_CONFIG)
                      + f"\n[limits]\nsend_queue_bytes = {QUEUE_LIMIT}\n")
    hub = HubProcess(hub_env(server.url, data_root / "flood-hub", config), data_root / "flood-hub")
    hub.start()
    yield hub
    hub.terminate()
    server.stop()


@pytest.fixture
async def flood_rds(flood_hub):
    from redis.asyncio import Redis

    client = Redis.from_url(flood_hub.env["REDIS_URL"])
    yield client
    await client.aclose()


def cuts(hub) -> int:
    """How many slow sockets this hub has cut off so far (its log says so)."""
    return hub.log_tail(10**7).count(CUT_LINE)


async def wait_for_cut(hub, before: int, timeout: float = 30.0) -> None:
    await asyncio.to_thread(wait_until, lambda: cuts(hub) > before, timeout, 0.05, "the hub to cut off the slow socket")


async def test_agent_that_stops_reading_is_closed_1013_while_other_chats_flow(flood_hub, flood_rds, lang):
    """An agent socket that never reads is closed with 1013; a chat next to it keeps flowing."""
    hub, rds = flood_hub, flood_rds
    username, visitors, burst = f"slow-{lang}", 6, 12
    await create_agent(rds, username, [lang], max_chats=visitors)
    cookie = await asyncio.to_thread(login_cookie, hub, username)
    slow = await RawSocket.connect(hub.port, "/ws/agent", {"Cookie": cookie}, rcvbuf=SMALL_RCVBUF, read_limit=4096)
    await slow.expect("welcome")
    await slow.send_json(type="status", status="online")
    await slow.expect("status")
    clients = [await visitor(hub, lang, name=f"v{i}") for i in range(visitors)]
    for client, _ in clients:
        await client.expect("assigned")
    other_lang = lang + "x"  # a neighbour chat on the same hub, served by another agent
    sam, _ = await agent(hub, rds, f"a-{other_lang}", [other_lang])
    ada, _ = await visitor(hub, other_lang)
    other_chat = (await sam.expect("assigned"))["chat_id"]
    before = cuts(hub)

    async def write(client: Client, n: int) -> None:
        for i in range(burst):
            await client.send(type="message", text=BIG, client_id=f"{n}-{i}")

    # From here on the slow agent reads nothing while every visitor writes big messages.
    flood = asyncio.gather(*(write(client, n) for n, (client, _) in enumerate(clients)))
    for i in range(10):  # the neighbour chat goes on, message for message
        await ada.send(type="message", text=f"still here {i}", client_id=f"n{i}")
        assert (await sam.expect("message", chat_id=other_chat, client_id=f"n{i}"))["text"] == f"still here {i}"
        await sam.send(type="message", chat_id=other_chat, text=f"reply {i}", client_id=f"r{i}")
        await ada.expect("message", client_id=f"r{i}")
    await flood
    for n, (client, _) in enumerate(clients):
        await client.expect("message", client_id=f"{n}-{burst - 1}")  # all stored and acknowledged
    await wait_for_cut(hub, before)
    assert await slow.close_code() == frames.CLOSE_SLOW

    # It comes back (a browser takes frames of any size: this welcome is over 1 MB).
    ws = await websockets.connect(hub.ws_url + "/ws/agent", additional_headers={"Cookie": cookie}, max_size=None)
    again = Client(ws)
    welcome = await again.expect("welcome")
    chats = {c["chat_id"]: c for c in welcome["chats"]}
    assert len(chats) == visitors  # still its chats, each with its full history
    for n, (_, hello) in enumerate(clients):
        history = chats[hello["chat_id"]]["history"]
        assert [m["client_id"] for m in history] == [f"{n}-{i}" for i in range(burst)]
        assert [m["seq"] for m in history] == list(range(1, burst + 1))
    await again.close()


async def test_visitor_that_stops_reading_is_closed_1013_and_resumes_from_last_seq(flood_hub, flood_rds, lang):
    """A visitor socket that never reads is closed with 1013, then resumes with last_seq."""
    hub, rds = flood_hub, flood_rds
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    slow = await RawSocket.connect(hub.port, "/ws/visitor", rcvbuf=SMALL_RCVBUF, read_limit=4096)
    await slow.send_json(type="hello", lang=lang)
    welcome = await slow.expect("welcome")
    chat_id = (await sam.expect("assigned"))["chat_id"]
    await slow.expect("assigned")
    await slow.send_json(type="message", text="hi", client_id="v1")
    last_seq = (await slow.expect("message", client_id="v1"))["seq"]
    before = cuts(hub)

    # The visitor reads nothing from now on while it and the agent each write a burst.
    for i in range(25):
        await slow.send_json(type="message", text=BIG, client_id=f"v-big-{i}")
    for i in range(50):
        await sam.send(type="message", chat_id=chat_id, text=BIG, client_id=f"a{i}")
    await wait_for_cut(hub, before)
    assert await slow.close_code() == frames.CLOSE_SLOW
    await sam.expect("message", client_id="a49", timeout=20)  # every message of the agent's burst is stored

    stored = await rds.llen(keys.chat_log(chat_id))
    back, again = await visitor(hub, lang, resume=welcome["resume"], last_seq=last_seq)
    assert again["chat_id"] == chat_id and again["status"] == "active"
    replayed = await back.messages(stored - last_seq, timeout=20)
    assert [m["seq"] for m in replayed] == list(range(last_seq + 1, stored + 1))
    # Its messages the hub stored before cutting it off came back in the replay; it resends
    # the others (it never saw their acknowledgements), and each is stored once.
    mine = [m["client_id"] for m in replayed if m["from"] == "visitor"]
    assert mine == [f"v-big-{i}" for i in range(len(mine))]
    for i in range(len(mine), 25):
        await back.send(type="message", text=BIG, client_id=f"v-big-{i}")
        await back.expect("message", client_id=f"v-big-{i}")
    log = [msgpack.unpackb(raw)["client_id"] for raw in await rds.lrange(keys.chat_log(chat_id), 0, -1)]
    assert [c for c in log if c.startswith("v-big")] == [f"v-big-{i}" for i in range(25)]
    if not any(f.get("type") == "message" and f["seq"] == len(log) for f in sam.received):
        await sam.expect("message", seq=len(log), timeout=20)  # the agent reads up to the last message
    await back.close()
    await sam.close()
