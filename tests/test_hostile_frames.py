"""Hostile frames on /ws/visitor and /ws/agent: every field of every frame with the wrong
type, malformed JSON and MessagePack, parser bombs, invalid UTF-8. Each gets an `error`
frame with a clear code (or, at the protocol level, a close code); the socket and the chat
go on; nothing is stored that should not be."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgpack
import pytest
import websockets

from chat import frames, keys
from tests.support.clients import agent, Client, login_cookie, visitor
from tests.support.rawsocket import OP_TEXT, RawSocket

WRONG = [1, 1.5, True, None, [], {}, ["x"], {"a": 1}]  # anything but the expected type
NOT_STR = [v for v in WRONG if v is not None]

# (frame, acceptable error codes): a visitor in an active chat.
VISITOR_CASES: list[tuple[dict[str, Any], set[str]]] = (
    [({"type": "message", "text": v, "client_id": "c"}, {"bad_frame"}) for v in WRONG + ["", "  \n\t "]]
    + [({"type": "message", "text": "ok", "client_id": v}, {"bad_frame"}) for v in NOT_STR + ["x" * 65]]
    + [({"type": "message", "text": "x" * (frames.MAX_TEXT_CHARS + 1), "client_id": "long"}, {"too_long"})]
    + [({"type": "typing", "active": v}, {"bad_frame"}) for v in WRONG if not isinstance(v, bool)]
    + [({"type": "read", "seq": v}, {"bad_frame"}) for v in ["1", -1, 1.5, True, [], 2**60]]
    + [({"type": "rate", "score": v, "comment": "c"}, {"not_allowed", "bad_frame"}) for v in ["5", 0, 6, None]]
    + [({"type": "contact", "email": v}, {"bad_frame"}) for v in NOT_STR + ["not an address", "a@b@c"]]
    + [({"type": "contact", "email": "ada@example.org", "name": v}, {"bad_frame"}) for v in NOT_STR]
    + [({"type": "wait_or_ticket", "choice": v}, {"bad_frame"}) for v in WRONG + ["maybe"]]
    + [({"type": v}, {"bad_frame"}) for v in WRONG + ["", "x" * 1000, "hello", "<script>"]]
)

# (frame, acceptable error codes): an agent holding CHAT; the placeholder is filled in.
CHAT = "@chat"
AGENT_CASES: list[tuple[dict[str, Any], set[str]]] = (
    [({"type": "status", "status": v}, {"bad_frame"}) for v in WRONG + ["busy", "ONLINE"]]
    + [({"type": "message", "chat_id": v, "text": "x", "client_id": "c"}, {"not_allowed"})
       for v in WRONG + ["", "someone-elses-chat", "../../etc"]]
    + [({"type": "message", "chat_id": CHAT, "text": v, "client_id": "c"}, {"bad_frame"}) for v in WRONG + [" "]]
    + [({"type": "message", "chat_id": CHAT, "text": "x", "client_id": v}, {"bad_frame"}) for v in NOT_STR]
    + [({"type": "typing", "chat_id": CHAT, "active": v}, {"bad_frame"}) for v in WRONG if not isinstance(v, bool)]
    + [({"type": "typing", "chat_id": v, "active": True}, {"not_allowed"}) for v in WRONG]
    + [({"type": "close", "chat_id": CHAT, "resolution": v}, {"bad_frame"}) for v in WRONG + ["done"]]
    + [({"type": "close", "chat_id": v, "resolution": "resolved"}, {"not_allowed"}) for v in WRONG]
    + [({"type": "transfer", "chat_id": CHAT, "to": v}, {"bad_frame", "not_allowed"}) for v in WRONG + ["", "nobody-by-that-name"]]
    + [({"type": "transfer", "chat_id": v, "to": "queue"}, {"not_allowed"}) for v in WRONG]
    + [({"type": v}, {"bad_frame"}) for v in WRONG + ["", "hello", "welcome"]]
)

# Raw payloads that are not a frame at all: (bytes, as a text frame?).
NOT_FRAMES: list[tuple[bytes, bool]] = [
    (b"", True), (b"{", True), (b"null", True), (b"[]", True), (b'"hello"', True), (b"42", True),
    (b'{"type": "message"', True), (b'{"type": "message", "text": NaN}', True),
    (b"[" * 30000 + b"]" * 30000, True),  # nesting bomb for the JSON parser
    (b'{"type": ' + b"9" * 5000 + b"}", True),  # an integer too long to convert
    (b"\x91" * 60000, False),  # nesting bomb for MessagePack
    (b"\xdd\xff\xff\xff\xff", False),  # an array claiming 4 billion items
    (b"\xc1", False), (b"\x81\x01\xa1x", False),  # reserved byte; a map with an int key
    (msgpack.packb({"type": "message"}) + b"\x00", False),  # trailing data
    (msgpack.packb({"type": b"message"}), False), (msgpack.packb({"type": "typing", "active": b"\x00"}), False),
    (msgpack.packb({"type": "message", "text": msgpack.ExtType(5, b"x")}), False),
    (b"\xa5caf\xc3", False),  # a str with invalid UTF-8 inside MessagePack
]


async def active_chat(hub, rds, lang, *, binary: bool = False) -> tuple[Client, dict, Client, str]:
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang], name="Sam")
    ada, welcome = await visitor(hub, lang, binary=binary)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    await ada.expect("assigned")
    return ada, welcome, sam, chat_id


async def snapshot(rds, chat_id: str) -> tuple:
    """What the chat holds in Redis: profile, log, client ids, and its route."""
    return (await rds.hgetall(keys.chat(chat_id)), await rds.lrange(keys.chat_log(chat_id), 0, -1),
            await rds.hgetall(keys.chat_client_ids(chat_id)), await rds.hget(keys.ROUTE, chat_id))


async def refused_each(hub, lang, welcome, cases, *, binary: bool) -> None:
    """Send each case on a visitor socket and check its error; a fresh socket (resume) every
    20 frames keeps under the visitor's rate limit, which is not what is tested here."""
    client = None
    for i, (frame, codes) in enumerate(cases):
        if i % 20 == 0:
            if client:
                await client.close()
            client, _ = await visitor(hub, lang, binary=binary, resume=welcome["resume"], last_seq=10**6)
        await client.send(**frame)
        error = await client.expect("error")
        assert error["code"] in codes, (frame, error)
        assert isinstance(error["message"], str) and error["message"]
    await client.close()


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
async def test_every_wrong_visitor_field_is_refused_and_nothing_is_stored(hub, rds, lang, binary):
    """Every visitor frame with a wrong-typed field gets its error; the chat is unchanged
    and a normal message still goes through."""
    ada, welcome, sam, chat_id = await active_chat(hub, rds, lang, binary=binary)
    before = await snapshot(rds, chat_id)
    await refused_each(hub, lang, welcome, VISITOR_CASES, binary=binary)
    assert await snapshot(rds, chat_id) == before
    await ada.send(type="message", text="a normal question", client_id="ok")
    assert (await ada.expect("message", client_id="ok"))["seq"] == 1
    assert (await sam.expect("message", chat_id=chat_id, client_id="ok"))["text"] == "a normal question"


async def test_every_wrong_agent_field_is_refused_and_nothing_is_stored(hub, rds, lang):
    """Every agent frame with a wrong-typed field gets its error; the agent keeps its chat."""
    ada, welcome, sam, chat_id = await active_chat(hub, rds, lang)
    before = await snapshot(rds, chat_id)
    agents_before = await rds.hget(keys.AGENTS, f"a-{lang}")
    cookie = await asyncio.to_thread(login_cookie, hub, f"a-{lang}")
    desk = None
    for i, (frame, codes) in enumerate(AGENT_CASES):
        if i % 40 == 0:  # a fresh socket now and then: the rate limit is not what is tested here
            if desk:
                await desk.close()
            desk = Client(await websockets.connect(hub.ws_url + "/ws/agent", additional_headers={"Cookie": cookie}))
            await desk.expect("welcome")
        frame = {k: (chat_id if v == CHAT else v) for k, v in frame.items()}
        await desk.send(**frame)
        error = await desk.expect("error")
        assert error["code"] in codes, (frame, error)
    await desk.close()
    assert await snapshot(rds, chat_id) == before
    assert await rds.hget(keys.AGENTS, f"a-{lang}") == agents_before
    await sam.send(type="message", chat_id=chat_id, text="still yours", client_id="ok")
    assert (await ada.expect("message", client_id="ok"))["text"] == "still yours"


@pytest.mark.parametrize("payload,text", NOT_FRAMES, ids=[f"raw{i}" for i in range(len(NOT_FRAMES))])
async def test_malformed_json_and_msgpack_get_bad_frame_and_the_socket_stays(hub, rds, lang, payload, text):
    """Bytes that are not a well-formed frame (bombs included) get bad_frame; the socket goes on."""
    ada, welcome, sam, chat_id = await active_chat(hub, rds, lang)
    raw = await RawSocket.connect(hub.port, "/ws/visitor")
    await raw.send_json(type="hello", resume=welcome["resume"], last_seq=0)
    await raw.expect("welcome")
    await raw.send_frame(OP_TEXT if text else 0x2, payload)
    error = await raw.expect("error")
    assert error["code"] == "bad_frame"
    await raw.send_json(type="message", text="after the junk", client_id="ok")
    assert (await raw.expect("message", client_id="ok"))["seq"] == 1
    assert await rds.llen(keys.chat_log(chat_id)) == 1
    raw.abort()


async def test_invalid_utf8_in_a_text_frame_closes_1007_and_others_go_on(hub, rds, lang):
    """A text frame that is not UTF-8 closes that socket with 1007 (invalid data) only."""
    ada, welcome, sam, chat_id = await active_chat(hub, rds, lang)
    raw = await RawSocket.connect(hub.port, "/ws/visitor")
    await raw.send_frame(OP_TEXT, b'{"type":"hello","name":"\xed\xa0\x80"}')  # an encoded lone surrogate
    assert await raw.close_code() == 1007
    await ada.send(type="message", text="unaffected", client_id="ok")
    assert (await sam.expect("message", chat_id=chat_id, client_id="ok"))["text"] == "unaffected"


@pytest.mark.parametrize("field,value", [
    ("site", 1), ("name", ["x"]), ("email", {"a": 1}), ("lang", 7), ("lang", "../../etc/passwd"),
    ("topic", True), ("topic", "<script>"), ("page", 3.5), ("last_seq", "7"), ("last_seq", -1),
    ("name", "x" * 101), ("page", "x" * 2001),
])
async def test_a_hello_with_a_wrong_field_is_refused_and_makes_no_chat(hub, rds, lang, field, value):
    """A hello with a wrong field: an error naming it, close 1008, and no chat in Redis."""
    chats_before = {k async for k in rds.scan_iter(match="lc:chat:{*}", count=1000)}
    raw = await RawSocket.connect(hub.port, "/ws/visitor")
    await raw.send_json(**{"type": "hello", "lang": lang, field: value})
    error = await raw.expect("error")
    assert error["code"] == "bad_frame" and (field in error["message"] or "hello" in error["message"])
    assert await raw.close_code() == frames.CLOSE_POLICY
    assert {k async for k in rds.scan_iter(match="lc:chat:{*}", count=1000)} == chats_before


@pytest.mark.parametrize("field,value,code", [
    ("identity", 12345, "bad_identity"), ("identity", "a.b", "bad_identity"), ("identity", ["x"], "bad_identity"),
    ("resume", 12345, "bad_resume"), ("resume", "x" * 10000, "bad_resume"), ("resume", {"a": 1}, "bad_resume"),
])
async def test_a_bad_identity_or_resume_is_refused_but_the_visitor_still_gets_a_chat(hub, rds, lang, field, value, code):
    """A forged identity or resume token: a clear error, then an unverified chat of its own."""
    raw = await RawSocket.connect(hub.port, "/ws/visitor")
    await raw.send_json(type="hello", lang=lang, plan="visionary", **{field: value})
    assert (await raw.expect("error"))["code"] == code
    welcome = await raw.expect("welcome")
    assert welcome["plan"] == "free" and welcome["verified"] is False
    raw.abort()


async def test_json_text_that_is_valid_but_huge_in_numbers_is_harmless(hub, rds, lang):
    """Floats like 1e999, NaN or -0.0 in any field are refused or ignored, never stored."""
    ada, welcome, sam, chat_id = await active_chat(hub, rds, lang)
    for body in ('{"type":"read","seq":1e999}', '{"type":"typing","active":NaN}', '{"type":"message","text":-0.0}'):
        await ada.ws.send(body)
        assert (await ada.expect("error"))["code"] == "bad_frame"
    assert await rds.llen(keys.chat_log(chat_id)) == 0
    json.loads('{"ok": 1}')
