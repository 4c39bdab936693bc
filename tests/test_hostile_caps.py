"""Caps that keep anonymous visitors from growing Redis or holding sockets without bound:
messages and bytes per chat, sockets per chat and per fresh_address, silent chats that go within
minutes, a ceiling on waiting chats (`offline` `busy`), a Redis memory warning, and the
deadlines and connection cap of the HTTP side (hello, request head, connections per process)."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from chat import chats, frames, keys
from chat.embedded_redis import EmbeddedRedis
from tests.support.clients import agent, create_agent, fresh_address, login_cookie, visitor
from tests.support.http import arequest
from tests.support.metrics import parse_prometheus, sample
from tests.support.rawsocket import raw_visitor, RawSocket
from tests.support.redis import DATABASES, db_url
from tests.support.servers import HubProcess, TEST_CONFIG, start_configured_hub
from tests.support.waiting import eventually

MESSAGES, BYTES, PER_CHAT, PER_ADDRESS = 5, 6000, 2, 3
CEILING_DB = DATABASES["hostile_caps_ceiling"]  # the ceiling counts every waiting chat: this hub's chats must be its own


def start_hub(data_dir, redis_url: str, *, timing: str = "", limits: str = "") -> HubProcess:
    """A hub whose [timing] / [limits] settings (TOML lines) are small enough to reach in a test."""
    return start_configured_hub(redis_url, data_dir, TEST_CONFIG.replace(
        "heartbeat = 0.2\n", f"heartbeat = 0.2\n{timing}\n") + f"\n[limits]\n{limits}\n")


@pytest.fixture(scope="module")
def caps_hub(redis_url, data_root):
    hub = start_hub(data_root / "caps-hub", redis_url, timing="silent_chat_ttl = 1", limits=(
        f"visitor_messages_per_chat = {MESSAGES}\nvisitor_bytes_per_chat = {BYTES}\n"
        f"sockets_per_chat = {PER_CHAT}\nsockets_per_address = {PER_ADDRESS}\n"))
    yield hub
    hub.terminate()


@pytest.fixture(scope="module")
def quick_hub(redis_url, data_root):
    hub = start_hub(data_root / "quick-hub", redis_url, timing="hello_timeout = 1\nheader_timeout = 1")
    yield hub
    hub.terminate()


async def write(client, text: str, client_id: str, answer: str = "message") -> dict:
    """Send one visitor message and wait for its answer: the acknowledgement or an error."""
    await client.send(type="message", text=text, client_id=client_id)
    return await client.expect(answer, client_id=client_id)


async def test_a_visitor_cannot_store_more_messages_than_the_chat_cap(caps_hub, rds, lang):
    """Past [limits] visitor_messages_per_chat: limit_reached, nothing stored; the agent still writes."""
    sam, _ = await agent(caps_hub, rds, f"a-{lang}", [lang])
    ada, welcome = await visitor(caps_hub, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    for i in range(MESSAGES):
        await write(ada, f"message {i}", f"m{i}")
    assert (await write(ada, "one too many", "over", "error"))["code"] == frames.LIMIT_REACHED
    assert await rds.llen(keys.chat_log(chat_id)) == MESSAGES
    await sam.send(type="message", chat_id=chat_id, text="I can still answer", client_id="s1")
    assert (await ada.expect("message", client_id="s1"))["text"] == "I can still answer"


async def test_a_visitor_cannot_store_more_bytes_than_the_chat_cap(caps_hub, rds, lang):
    """Past [limits] visitor_bytes_per_chat (long messages): limit_reached and nothing stored."""
    ada, welcome = await visitor(caps_hub, lang)
    long = "x" * (BYTES // 2 + 100)  # one fits, two do not
    await write(ada, long, "l1")
    assert (await write(ada, long, "l2", "error"))["code"] == frames.LIMIT_REACHED
    assert await rds.llen(keys.chat_log(welcome["chat_id"])) == 1


async def test_one_chat_takes_only_so_many_sockets(caps_hub, lang):
    """Past [limits] sockets_per_chat a resume gets limit_reached and 1008; a freed place is taken again."""
    first, welcome = await visitor(caps_hub, lang)
    others = [await visitor(caps_hub, lang, resume=welcome["resume"]) for _ in range(PER_CHAT - 1)]
    assert all(w["chat_id"] == welcome["chat_id"] for _, w in others)
    raw = await RawSocket.connect(caps_hub.port, "/ws/visitor")
    await raw.send_json(type="hello", resume=welcome["resume"], last_seq=0)
    assert (await raw.expect("error"))["code"] == frames.LIMIT_REACHED
    assert await raw.close_code() == frames.CLOSE_POLICY
    await first.close()

    async def back_in():
        again = await RawSocket.connect(caps_hub.port, "/ws/visitor")
        await again.send_json(type="hello", resume=welcome["resume"], last_seq=0)
        frame = await again.recv_json()
        return frame if frame.get("type") == "welcome" else again.abort()

    assert (await eventually(back_in, message="a freed place on the chat"))["chat_id"] == welcome["chat_id"]


async def test_one_address_holds_only_so_many_sockets(caps_hub, lang):
    """Past [limits] sockets_per_address (hello or not): limit_reached and 1008; another fresh_address gets in."""
    ip = fresh_address()
    held = [await RawSocket.connect(caps_hub.port, "/ws/visitor", {"X-Forwarded-For": ip}) for _ in range(PER_ADDRESS)]
    refused = await RawSocket.connect(caps_hub.port, "/ws/visitor", {"X-Forwarded-For": ip})
    assert (await refused.expect("error"))["code"] == frames.LIMIT_REACHED
    assert await refused.close_code() == frames.CLOSE_POLICY
    other = await raw_visitor(caps_hub, lang, next(a for a in iter(fresh_address, None) if a != ip))
    assert (await other.expect("welcome"))["chat_id"]
    for raw in held:
        raw.abort()


async def test_a_chat_the_visitor_never_wrote_in_is_gone_within_minutes(caps_hub, rds, lang):
    """A chat closed before its visitor wrote is deleted after [timing] silent_chat_ttl, resume key too."""
    ada, welcome = await visitor(caps_hub, lang)
    await ada.send(type="leave")
    await ada.expect("closed")
    resume_key = keys.resume(chats.token_hash(welcome["resume"]))

    async def gone() -> bool:
        return await rds.exists(keys.chat(welcome["chat_id"]), resume_key) == 0

    await eventually(gone, message="the silent chat and its resume key to expire")
    back, again = await visitor(caps_hub, lang, resume=welcome["resume"])
    assert (await back.expect("error"))["code"] == frames.BAD_RESUME and again["chat_id"] != welcome["chat_id"]


async def test_a_chat_the_visitor_wrote_in_is_kept(caps_hub, rds, lang):
    """A chat with a visitor message is archived for the retention period, not expired."""
    ada, welcome = await visitor(caps_hub, lang)
    await write(ada, "please keep this", "k1")
    await ada.send(type="leave")
    await ada.expect("closed")
    assert await rds.ttl(keys.chat(welcome["chat_id"])) == -1
    assert await rds.zscore(keys.CHATS_CLOSED, welcome["chat_id"]) is not None


async def test_a_socket_that_never_says_hello_is_closed_after_the_hello_timeout(quick_hub):
    """No hello within [timing] hello_timeout: bad_frame and 1008 (the old timeout was 30 s)."""
    raw = await RawSocket.connect(quick_hub.port, "/ws/visitor")
    assert (await raw.expect("error", timeout=8))["code"] == frames.BAD_FRAME
    assert await raw.close_code(timeout=8) == frames.CLOSE_POLICY


async def test_a_half_sent_request_head_gets_408_and_is_closed(quick_hub):
    """A request head still incomplete after [timing] header_timeout: 408, then the connection ends."""
    reader, writer = await asyncio.open_connection("127.0.0.1", quick_hub.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 8)  # read() returns at EOF: the hub closed it
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_a_hub_at_its_connection_cap_refuses_new_sockets_with_503(redis_url, data_root, lang):
    """Past [limits] max_connections a socket upgrade gets 503; a freed place is taken again."""
    hub = start_hub(data_root / "crowded-hub", redis_url, limits="max_connections = 4")
    try:
        held = []
        for _ in range(3):
            client, _ = await visitor(hub, lang)
            held.append(client)
        with pytest.raises(ConnectionError, match="503"):
            await RawSocket.connect(hub.port, "/ws/visitor")
        await held.pop().close()

        async def back_in():
            try:
                return await RawSocket.connect(hub.port, "/ws/visitor")
            except ConnectionError:
                return None

        assert await eventually(back_in, message="a freed connection")
    finally:
        hub.terminate()


async def test_past_the_waiting_ceiling_new_visitors_get_offline_busy(redis_url, data_root, lang):
    """Past [limits] max_waiting_chats a new visitor is welcomed offline with reason busy."""
    hub = start_hub(data_root / "full-hub", db_url(redis_url, CEILING_DB), limits="max_waiting_chats = 2")
    try:
        waiting = [await visitor(hub, lang) for _ in range(2)]
        assert all(w["status"] == "offline" for _, w in waiting)
        late, welcome = await visitor(hub, lang)
        assert welcome["status"] == "offline"
        assert (await late.expect("offline"))["reason"] == frames.OFFLINE_BUSY
    finally:
        hub.terminate()


@pytest.fixture(scope="module")
def small_redis(data_root):
    """A Redis of its own with a maxmemory (the session's has none): configuration, not state."""
    server = EmbeddedRedis(data_root / "small-redis", tie_to_parent=True)
    server.start()
    import redis

    client = redis.Redis.from_url(server.url)
    client.config_set("maxmemory", "32mb")
    client.close()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def memory_hub(small_redis, data_root):
    """A hub that warns past 1 % of maxmemory (an empty Redis uses about 3 % of 32 MB)."""
    hub = start_hub(data_root / "memory-hub", small_redis.url, limits="redis_memory_warning = 1")
    yield hub
    hub.terminate()


async def test_metrics_warn_as_redis_memory_nears_maxmemory(memory_hub):
    """/metrics reports Redis memory against maxmemory and raises its warning past the threshold."""
    reply = await arequest(memory_hub.base_url, "GET", "/metrics")
    parsed = parse_prometheus(reply.text)
    assert sample(parsed, "livechat_redis_memory_max_bytes") == 32 * 1024 * 1024
    assert 0 < sample(parsed, "livechat_redis_memory_used_bytes")
    assert sample(parsed, "livechat_redis_memory_warning") == 1


async def test_the_supervisor_snapshot_warns_as_redis_memory_nears_maxmemory(memory_hub, small_redis, lang):
    """GET /api/queue (the supervisor view's data) carries the Redis memory warning."""
    rds = Redis.from_url(small_redis.url)
    try:
        user = await create_agent(rds, f"s-{lang}", [lang], role="supervisor")
    finally:
        await rds.aclose()
    cookie = await asyncio.to_thread(login_cookie, memory_hub, user)
    snap = (await arequest(memory_hub.base_url, "GET", "/api/queue", headers={"Cookie": cookie})).json()
    assert snap["redis_memory"]["warning"] is True and snap["redis_memory"]["max_bytes"] == 32 * 1024 * 1024
