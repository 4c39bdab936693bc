"""The hub's WebSocket protocol (chat/ws_protocol.py), on a real hub over bare sockets: the
handshake RFC 6455 asks for, frames split and fragmented as a network or a client may, and
the close codes of frames that break the protocol; and its light stand-ins for asyncio.Queue
and asyncio.Event, which behave as the asyncio ones where the protocol and the send queue use
them. Every other test of a hub runs on this protocol too."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import struct

import msgpack

from chat import frames
from chat.ws_protocol import Flag, Inbox
from tests.support.rawsocket import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawSocket


async def handshake(port: int, lines: list[str]) -> bytes:
    """Send a request head as given and return the hub's whole answer head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(("\r\n".join([*lines, "", ""])).encode("latin-1"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    return head


def request(port: int, key: str | None = None, version: str = "13", method: str = "GET", extra: tuple[str, ...] = ()) -> list[str]:
    key = key if key is not None else base64.b64encode(secrets.token_bytes(16)).decode()
    return [f"{method} /ws/visitor HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}", f"Sec-WebSocket-Version: {version}", *extra]


async def test_the_handshake_answer_proves_the_key_and_selects_msgpack(hub):
    """101 with Sec-WebSocket-Accept computed from the key and the livechat.msgpack subprotocol chosen."""
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    head = await handshake(hub.port, request(hub.port, key, extra=("Sec-WebSocket-Protocol: chat, livechat.msgpack",)))
    lines = head.decode("latin-1").lower().split("\r\n")
    expected = base64.b64encode(hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()).decode()
    assert lines[0].startswith("http/1.1 101")
    assert f"sec-websocket-accept: {expected.lower()}" in lines
    assert "sec-websocket-protocol: livechat.msgpack" in lines


async def test_a_handshake_of_another_version_gets_426_naming_13(hub):
    """Sec-WebSocket-Version 8 is answered 426 with the version the hub speaks."""
    head = await handshake(hub.port, request(hub.port, version="8"))
    assert head.startswith(b"HTTP/1.1 426")
    assert b"sec-websocket-version: 13" in head.lower()


async def test_a_handshake_with_a_malformed_key_gets_400(hub):
    """A Sec-WebSocket-Key that is not 16 bytes in base64 is answered 400."""
    head = await handshake(hub.port, request(hub.port, key="not-a-key"))
    assert head.startswith(b"HTTP/1.1 400")


async def test_a_hello_in_fragments_written_a_byte_at_a_time_is_read_whole(hub, lang):
    """A hello cut into three fragments, each byte written on its own, gets its welcome."""
    raw = await RawSocket.connect(hub.port, "/ws/visitor")
    payload = json.dumps({"type": "hello", "lang": lang}).encode()
    parts = [payload[:5], payload[5:12], payload[12:]]
    wire = (raw.frame_bytes(OP_TEXT, parts[0], fin=False) + raw.frame_bytes(OP_CONT, parts[1], fin=False)
            + raw.frame_bytes(OP_CONT, parts[2]))
    for i in range(len(wire)):
        raw.writer.write(wire[i:i + 1])
        await raw.writer.drain()
    assert (await raw.expect("welcome"))["status"] in (frames.CHAT_QUEUED, frames.CHAT_OFFLINE)


async def test_a_ping_between_fragments_gets_its_pong_and_the_message_still_arrives(hub, lang):
    """A ping inside a fragmented message is answered with its payload; the message is read whole."""
    raw = await RawSocket.connect(hub.port, "/ws/visitor")
    payload = msgpack.packb({"type": "hello", "lang": lang})
    raw.writer.write(raw.frame_bytes(OP_BINARY, payload[:4], fin=False) + raw.frame_bytes(OP_PING, b"are you there")
                     + raw.frame_bytes(OP_CONT, payload[4:]))
    assert await raw.recv_frame() == (OP_PONG, b"are you there")
    await raw.expect("welcome")


async def test_a_hello_after_thousands_of_empty_fragments_is_read_whole(hub, lang):
    """Empty continuation frames add nothing: the message they continue still arrives whole."""
    raw = await RawSocket.connect(hub.port, "/ws/visitor")
    payload = json.dumps({"type": "hello", "lang": lang}).encode()
    empty = raw.frame_bytes(OP_CONT, b"", fin=False)
    raw.writer.write(raw.frame_bytes(OP_TEXT, payload[:3], fin=False) + empty * 5000
                     + raw.frame_bytes(OP_CONT, payload[3:]))
    await raw.expect("welcome")


async def test_a_handshake_to_an_absolute_url_without_a_path_gets_400(hub):
    """A request target such as http://host (no path) is refused in plain HTTP, not a server error."""
    lines = request(hub.port)
    lines[0] = f"GET http://127.0.0.1:{hub.port} HTTP/1.1"
    head = await handshake(hub.port, lines)
    assert head.startswith(b"HTTP/1.1 400")


async def test_an_unmasked_frame_closes_the_socket_with_1002(hub, lang):
    """A client frame without a mask is a protocol error: close 1002."""
    raw = await RawSocket.connect(hub.port, "/ws/visitor")
    payload = json.dumps({"type": "hello", "lang": lang}).encode()
    raw.writer.write(bytes((0x81, len(payload))) + payload)
    assert await raw.close_code() == frames.CLOSE_PROTOCOL_ERROR


async def test_a_reserved_opcode_closes_the_socket_with_1002(hub):
    """Opcode 3 is reserved: close 1002."""
    raw = await RawSocket.connect(hub.port, "/ws/visitor")
    await raw.send_frame(0x3, b"?")
    assert await raw.close_code() == frames.CLOSE_PROTOCOL_ERROR


async def test_a_continuation_with_no_message_closes_the_socket_with_1002(hub):
    """A continuation frame that continues nothing: close 1002."""
    raw = await RawSocket.connect(hub.port, "/ws/visitor")
    await raw.send_frame(OP_CONT, b"orphan")
    assert await raw.close_code() == frames.CLOSE_PROTOCOL_ERROR


async def test_a_message_over_the_limit_in_fragments_closes_with_1009(hub, lang):
    """Fragments that together pass the message limit close the socket with 1009 before the last one."""
    raw = await RawSocket.connect(hub.port, "/ws/visitor")
    half = b"x" * (frames.MAX_FRAME_BYTES // 2 + 1)
    await raw.send_frame(OP_TEXT, half, fin=False)
    await raw.send_frame(OP_CONT, half, fin=False)
    assert await raw.close_code() == frames.CLOSE_TOO_BIG


async def test_a_close_from_the_client_is_echoed_with_its_code(hub, lang):
    """The hub answers a client's close with the same code, then ends the connection."""
    raw = await RawSocket.connect(hub.port, "/ws/visitor")
    await raw.send_json(type="hello", lang=lang)
    await raw.expect("welcome")
    await raw.send_frame(OP_CLOSE, struct.pack("!H", 4001) + b"bye")
    assert await raw.close_code() == 4001
    assert await raw.reader.read() == b""


async def test_inbox_hands_items_in_order_to_a_waiting_reader():
    """Items put while a reader waits, and after, come out in the order they went in."""
    inbox = Inbox()
    first = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    for item in ("a", "b", "c"):
        inbox.put_nowait(item)
    assert [await first, await inbox.get(), await inbox.get()] == ["a", "b", "c"]
    assert inbox.empty()


async def test_inbox_reader_cancelled_after_its_wake_up_passes_the_item_on():
    """A reader cancelled once woken (as asyncio.Queue.get) leaves the item to the next reader."""
    inbox = Inbox()
    first = asyncio.ensure_future(inbox.get())
    second = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("only")
    first.cancel()
    assert await asyncio.wait_for(second, 5) == "only"
    assert first.cancelled()


async def test_flag_wakes_every_waiter_and_waits_again_once_cleared():
    """set wakes all waiters; after clear, wait blocks until the next set."""
    flag = Flag()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    flag.clear()
    again = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    assert not again.done()
    flag.set()
    assert await asyncio.wait_for(again, 5) is True


async def test_a_flag_made_set_does_not_wait():
    """Flag(True), as uvicorn's "the transport takes writes", lets a writer through at once."""
    assert await asyncio.wait_for(Flag(True).wait(), 5) is True
