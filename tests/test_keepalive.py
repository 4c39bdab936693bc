"""The hub's WebSocket keepalive ([timing] ping_interval and ping_timeout): a socket whose peer
is gone is found and closed, one that answers stays open."""

from __future__ import annotations

import pytest

from tests.support.rawsocket import OP_CLOSE, OP_PING, OP_PONG, RawSocket
from tests.support.servers import TEST_CONFIG, start_configured_hub

QUICK_PINGS = TEST_CONFIG.replace("[timing]\n", "[timing]\nping_interval = 1\nping_timeout = 1\n", 1)


@pytest.fixture(scope="module")
def pinging_hub(redis_url, data_root):
    """A hub that pings every socket every second and waits a second for the pong."""
    assert QUICK_PINGS != TEST_CONFIG
    process = start_configured_hub(redis_url, data_root / "ping-hub", QUICK_PINGS)
    yield process
    process.terminate()


async def test_a_socket_that_never_answers_pings_is_closed_with_1011(pinging_hub, lang):
    """A visitor socket that reads but never answers a ping is closed with 1011."""
    raw = await RawSocket.connect(pinging_hub.port, "/ws/visitor")
    await raw.send_json(type="hello", lang=lang)
    await raw.expect("welcome")
    assert await raw.close_code(timeout=30) == 1011
    assert any(opcode == OP_PING for opcode, _ in raw.frames)


async def test_a_socket_that_answers_pings_stays_open(pinging_hub, lang):
    """A visitor socket that answers every ping is still open after several of them."""
    raw = await RawSocket.connect(pinging_hub.port, "/ws/visitor")
    await raw.send_json(type="hello", lang=lang)
    await raw.expect("welcome")
    pings = 0
    while pings < 4:
        opcode, payload = await raw.recv_frame(timeout=30)
        assert opcode != OP_CLOSE, "the hub closed a socket that answers its pings"
        if opcode == OP_PING:
            pings += 1
            await raw.send_frame(OP_PONG, payload)
    await raw.send_json(type="leave")
    assert (await raw.expect("closed"))["reason"] == "visitor_left"
