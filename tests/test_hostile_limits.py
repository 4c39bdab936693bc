"""Limits against floods and oversized input: frames over 64 KiB close with 1009, a flood of
tiny frames gets `rate_limited` and then 1008, one address cannot open chats without end
([limits] new_chats_per_minute, counted per hashed address). Everyone else is served meanwhile."""

from __future__ import annotations

import asyncio
import json
import re

import msgpack
import pytest

from chat import frames, keys
from tests.support.clients import agent, create_agent, fresh_address, login_cookie, visitor
from tests.support.rawsocket import OP_BINARY, OP_CONT, OP_TEXT, raw_visitor, RawSocket
from tests.support.servers import hub_env, HubProcess, TEST_CONFIG

NEW_CHATS = 3


@pytest.fixture(scope="module")
def strict_hub(redis_url, data_root):
    """A hub whose address limit is small enough to reach in a test."""
    config = data_root / "strict.toml"
    config.write_text(TEST_CONFIG + f"\n[limits]\nnew_chats_per_minute = {NEW_CHATS}\n")
    hub = HubProcess(hub_env(redis_url, data_root / "strict-hub", config), data_root / "strict-hub")
    hub.start()
    yield hub
    hub.terminate()


@pytest.mark.parametrize("kind", ["visitor", "agent"])
async def test_a_flood_of_tiny_frames_is_rate_limited_then_closed_1008(hub, rds, lang, kind):
    """10,000 tiny frames at once: a rate_limited error, then close 1008; a neighbour chat
    is served all the while."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, _ = await visitor(hub, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    if kind == "visitor":
        flooder = await raw_visitor(hub, lang + "f", None)
        await flooder.expect("welcome")
    else:

        await create_agent(rds, f"f-{lang}", [lang + "f"])
        cookie = await asyncio.to_thread(login_cookie, hub, f"f-{lang}")
        flooder = await RawSocket.connect(hub.port, "/ws/agent", {"Cookie": cookie})
        await flooder.expect("welcome")
    tiny = flooder.frame_bytes(OP_TEXT, b'{"type":"typing","active":true}')
    flooder.writer.write(tiny * 10_000)
    await flooder.writer.drain()
    warning = await flooder.expect("error", code=frames.RATE_LIMITED)
    assert "slow down" in warning["message"]
    # The neighbours chat on while the flood is being dealt with.
    await ada.send(type="message", text="am I still served?", client_id="n1")
    assert (await sam.expect("message", chat_id=chat_id, client_id="n1"))["text"] == "am I still served?"
    assert await flooder.close_code() == frames.CLOSE_POLICY
    await sam.send(type="message", chat_id=chat_id, text="yes", client_id="n2")
    await ada.expect("message", client_id="n2")


async def test_a_message_flood_stores_only_what_the_rate_allows(hub, rds, lang):
    """Message frames flooded at once: those past the burst are refused, never stored."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    raw = await raw_visitor(hub, lang, None)
    chat_id = (await raw.expect("welcome"))["chat_id"]
    await sam.expect("assigned")
    burst = b"".join(raw.frame_bytes(OP_TEXT, json.dumps({"type": "message", "text": f"m{i}", "client_id": f"c{i}"}).encode())
                     for i in range(1000))
    raw.writer.write(burst)
    await raw.writer.drain()
    assert await raw.close_code() == frames.CLOSE_POLICY
    stored = [msgpack.unpackb(m)["client_id"] for m in await rds.lrange(keys.chat_log(chat_id), 0, -1)]
    acks = [f["client_id"] for f in raw.data_frames() if f.get("type") == "message"]
    numbers = [int(c[1:]) for c in stored]
    # The burst is stored in order; the bucket refilling during the flood may let a few later
    # ones through, still in order and never more than the rate allows.
    assert 0 < len(stored) <= 60 and numbers == sorted(set(numbers)) and numbers[:20] == list(range(20))
    assert set(acks) <= set(stored)  # nothing acknowledged that was not stored


@pytest.mark.parametrize("path", ["/ws/visitor", "/ws/agent"])
@pytest.mark.parametrize("how", ["text", "binary", "fragments"])
async def test_a_frame_over_64_kib_closes_1009(hub, rds, lang, path, how):
    """Over 64 KiB in one message, whole or in fragments, text or binary: close 1009."""
    headers = None
    if path == "/ws/agent":

        await create_agent(rds, f"a-{lang}", [lang])
        headers = {"Cookie": await asyncio.to_thread(login_cookie, hub, f"a-{lang}")}
    raw = await RawSocket.connect(hub.port, path, headers)
    big = b"x" * (frames.MAX_FRAME_BYTES + 1)
    if how == "text":
        await raw.send_frame(OP_TEXT, big)
    elif how == "binary":
        await raw.send_frame(OP_BINARY, msgpack.packb({"type": "message", "text": big.decode()}))
    else:
        for i in range(3):
            await raw.send_frame(OP_TEXT if i == 0 else OP_CONT, b"y" * 30_000, fin=i == 2)
    assert await raw.close_code() == frames.CLOSE_TOO_BIG


async def test_one_address_cannot_open_chats_without_end(strict_hub, rds, lang):
    """Past [limits] new_chats_per_minute from one address: rate_limited and close 1008;
    another address, and a resume from the same one, still get in."""
    ip = fresh_address()
    opened = []
    for _ in range(NEW_CHATS):
        raw = await raw_visitor(strict_hub, lang, ip)
        opened.append(await raw.expect("welcome"))
    refused = await raw_visitor(strict_hub, lang, ip)
    error = await refused.expect("error")
    assert error["code"] == frames.RATE_LIMITED and "new chats" in error["message"]
    assert await refused.close_code() == frames.CLOSE_POLICY
    other_ip = next(a for a in iter(fresh_address, None) if a != ip)
    other = await raw_visitor(strict_hub, lang, other_ip)
    assert (await other.expect("welcome"))["status"] in ("queued", "offline")
    back = await RawSocket.connect(strict_hub.port, "/ws/visitor", {"X-Forwarded-For": ip})
    await back.send_json(type="hello", resume=opened[0]["resume"], last_seq=0)
    assert (await back.expect("welcome"))["chat_id"] == opened[0]["chat_id"]  # a resume is not a new chat


async def test_the_address_limit_keeps_no_raw_address_in_redis(strict_hub, rds, lang):
    """The counter behind the address limit is keyed by a salted hash, never by the IP."""
    ip = fresh_address()
    raw = await raw_visitor(strict_hub, lang, ip)
    await raw.expect("welcome")
    counters = [k.decode() async for k in rds.scan_iter(match="lc:limit:new-chats:*", count=1000)]
    assert counters and all(re.fullmatch(r"lc:limit:new-chats:[0-9a-f]{32}", k) for k in counters)
    assert not [k async for k in rds.scan_iter(match=f"*{ip}*", count=1000)]
    for key in counters:
        assert 0 < await rds.ttl(key) <= 60


async def test_loopback_is_not_limited(strict_hub, lang):
    """Local tools (health checks, load tests) and proxies that forward no address are not limited."""
    for _ in range(NEW_CHATS + 2):
        raw = await raw_visitor(strict_hub, lang, None)
        await raw.expect("welcome")
        raw.abort()
