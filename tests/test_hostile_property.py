"""Property: whatever frames a client throws at a live visitor socket (random JSON, random
MessagePack, random bytes, valid frames with random fields), the socket answers in order or
closes with a protocol close code, the hub logs no crash, the chat log stays well-formed, and
a normal chat still works afterwards."""

from __future__ import annotations

import asyncio
import json

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat import frames, keys
from tests.support.clients import agent, visitor
from tests.support.http import health_status
from tests.support.rawsocket import close_code_of, OP_BINARY, OP_CLOSE, OP_TEXT, RawSocket

TYPES = ["hello", "message", "typing", "leave", "rate", "contact", "wait_or_ticket", "read", "close", "status"]
FIELDS = ["type", "text", "client_id", "active", "score", "comment", "email", "name", "choice", "seq", "chat_id",
          "resume", "last_seq", "identity", "lang", "topic", "page", "site", "plan"]
PROTOCOL_CLOSES = {frames.CLOSE_POLICY, frames.CLOSE_TOO_BIG, 1007}

scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=True)
           | st.text(max_size=60) | st.sampled_from(["", " ", "\u202e", "<script>", "\ud800", "\x00", "1e999"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                      max_leaves=12)
objects = st.fixed_dictionaries({"type": st.sampled_from(TYPES) | st.text(max_size=12) | values},
                                optional={k: values for k in FIELDS[1:]})


def _json(obj) -> tuple[int, bytes]:
    return OP_TEXT, json.dumps(obj).encode()


def _msgpack(obj) -> tuple[int, bytes]:
    try:
        return OP_BINARY, msgpack.packb(obj)
    except (UnicodeEncodeError, OverflowError, TypeError):  # what MessagePack cannot carry
        return OP_BINARY, b"\xc1"


wire_frames = st.one_of(
    objects.map(_json),
    objects.map(_msgpack),
    st.binary(max_size=200).map(lambda b: (OP_BINARY, b)),
    st.text(max_size=200).map(lambda t: (OP_TEXT, t.encode("utf-8", "surrogatepass"))),
    st.builds(lambda text, cid: _json({"type": "message", "text": text, "client_id": cid}),
              st.text(max_size=300), st.text(max_size=70)),
)


async def one_round(hub, resume: str, batch: list[tuple[int, bytes]], n: int) -> None:
    """Throw one batch at a fresh socket on the chat, then a marker that must be answered."""
    raw = await RawSocket.connect(hub.port, "/ws/visitor")
    try:
        await raw.send_json(type="hello", resume=resume, last_seq=10**6)
        await raw.expect("welcome")
        for opcode, payload in batch:
            await raw.send_frame(opcode, payload)
        marker = f"marker-{n}"
        await raw.send_json(type=marker)
        while True:
            opcode, payload = await raw.recv_frame(15)
            if opcode == OP_CLOSE:
                assert close_code_of(payload) in PROTOCOL_CLOSES, close_code_of(payload)
                return
            if opcode in (OP_TEXT, OP_BINARY):
                frame = json.loads(payload) if opcode == OP_TEXT else msgpack.unpackb(payload)
                assert isinstance(frame, dict) and isinstance(frame.get("type"), str)
                if frame["type"] == "error":
                    assert frame["code"] in {"bad_frame", "too_long", "not_allowed", "rate_limited", "bad_identity",
                                             "bad_resume", "unavailable"}, frame
                    if marker in frame["message"]:
                        return  # every frame before it was dealt with, in order
    finally:
        raw.abort()


def crashes(hub) -> int:
    log = hub.log_tail(10**7)
    return log.count("Exception in ASGI application") + log.count("Traceback (most recent call last)")


async def test_random_frames_never_break_a_socket_the_chat_or_the_hub(hub, rds, lang):
    """50 random batches of hostile frames on a live chat; then the chat and a new one still work."""
    loop = asyncio.get_running_loop()
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, welcome = await visitor(hub, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    crashes_before = crashes(hub)
    rounds = iter(range(10**6))

    @settings(max_examples=50, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(wire_frames, min_size=1, max_size=6))
    def throw(batch):
        asyncio.run_coroutine_threadsafe(one_round(hub, welcome["resume"], batch, next(rounds)), loop).result(60)

    await asyncio.to_thread(throw)

    assert crashes(hub) == crashes_before
    assert health_status(hub.base_url) == 200
    log = [msgpack.unpackb(raw) for raw in await rds.lrange(keys.chat_log(chat_id), 0, -1)]
    assert [m["seq"] for m in log] == list(range(1, len(log) + 1))
    for m in log:  # only well-formed messages were stored
        assert m["from"] == "visitor" and isinstance(m["text"], str) and m["text"].strip()
        assert len(m["text"]) <= frames.MAX_TEXT_CHARS and frames.clean_text(m["text"]) == m["text"]
    other = lang + "n"
    kim, _ = await agent(hub, rds, f"a-{other}", [other])
    bob, _ = await visitor(hub, other)
    other_chat = (await kim.expect("assigned"))["chat_id"]
    await bob.send(type="message", text="a normal chat", client_id="n")
    assert (await kim.expect("message", chat_id=other_chat, client_id="n"))["text"] == "a normal chat"
    for client in (sam, ada, kim, bob):
        await client.close()
