"""Bad input on the sockets (issue: hub core): each gets a clear error or close code."""

from __future__ import annotations

import asyncio
import json

import websockets

from chat import keys
from tests.support.clients import agent, Client, login_cookie, visitor


async def test_non_json_frame_gets_bad_frame_and_socket_stays_open(hub, rds, lang):
    """A frame that is not JSON is refused with bad_frame; the chat goes on."""
    await agent(hub, rds, f"a-{lang}", [lang])
    ada, _ = await visitor(hub, lang)
    await ada.ws.send("this is {not json")
    assert (await ada.expect("error"))["code"] == "bad_frame"
    await ada.send(type="message", text="still here", client_id="x")
    assert (await ada.expect("message", client_id="x"))["seq"] == 1


async def test_unknown_frame_type_gets_bad_frame(hub, rds, lang):
    """An unknown type is refused with bad_frame."""
    await agent(hub, rds, f"a-{lang}", [lang])
    ada, _ = await visitor(hub, lang)
    await ada.send(type="teleport")
    assert (await ada.expect("error"))["code"] == "bad_frame"


async def test_message_over_4000_characters_gets_too_long(hub, rds, lang):
    """A message text over 4,000 characters is refused with too_long and not stored."""
    await agent(hub, rds, f"a-{lang}", [lang])
    ada, welcome = await visitor(hub, lang)
    await ada.send(type="message", text="x" * 4001, client_id="big")
    assert (await ada.expect("error"))["code"] == "too_long"
    assert await rds.llen(keys.chat_log(welcome["chat_id"])) == 0


async def test_frame_over_64_kib_closes_with_1009(hub, rds, lang):
    """A frame larger than 64 KiB closes the socket with 1009."""
    ada, _ = await visitor(hub, lang)
    await ada.ws.send(json.dumps({"type": "message", "text": "x" * 70000}))
    assert await ada.closed_code() == 1009


async def test_first_frame_not_hello_gets_error_then_close_1008(hub):
    """A first frame that is not hello is answered with an error, then close 1008."""
    async with websockets.connect(hub.ws_url + "/ws/visitor") as ws:
        client = Client(ws)
        await client.send(type="message", text="hi")
        assert (await client.expect("error"))["code"] == "bad_frame"
        assert await client.closed_code() == 1008


async def test_agent_socket_without_session_closes_1008_before_any_data(hub):
    """/ws/agent without a valid session cookie is closed with 1008 and sends no frame."""
    async with websockets.connect(hub.ws_url + "/ws/agent") as ws:
        client = Client(ws)
        assert await client.closed_code() == 1008
        assert client.received == []


async def test_forged_session_cookie_is_refused(hub):
    """A session cookie with a forged signature gets close 1008."""
    headers = {"Cookie": "lc_session=forged.value.signature"}
    async with websockets.connect(hub.ws_url + "/ws/agent", additional_headers=headers) as ws:
        assert await Client(ws).closed_code() == 1008


async def test_cross_origin_agent_socket_is_refused(hub, rds, lang):
    """An agent socket opened from another site's page (Origin header) gets close 1008."""
    username = f"a-{lang}"
    await agent(hub, rds, username, [lang], online=False)
    cookie = await asyncio.to_thread(login_cookie, hub, username)
    async with websockets.connect(hub.ws_url + "/ws/agent", origin="https://evil.example",
                                  additional_headers={"Cookie": cookie}) as ws:
        client = Client(ws)
        assert await client.closed_code() == 1008
        assert client.received == []


async def test_same_origin_agent_socket_is_accepted(hub, rds, lang):
    """The dashboard's own origin may open the agent socket."""
    username = f"a-{lang}"
    await agent(hub, rds, username, [lang], online=False)
    cookie = await asyncio.to_thread(login_cookie, hub, username)
    async with websockets.connect(hub.ws_url + "/ws/agent", origin=hub.base_url,
                                  additional_headers={"Cookie": cookie}) as ws:
        assert (await Client(ws).expect("welcome"))["agent"]["username"] == username


async def test_wrong_resume_token_starts_a_new_chat_never_someone_elses(hub, rds, lang):
    """A wrong resume token gets bad_resume and a brand-new chat."""
    await agent(hub, rds, f"a-{lang}", [lang])
    _, first = await visitor(hub, lang)
    forged = first["resume"][:-4] + "AAAA"
    ws = await websockets.connect(hub.ws_url + "/ws/visitor")
    client = Client(ws)
    await client.send(type="hello", lang=lang, resume=forged, last_seq=0)
    assert (await client.expect("error"))["code"] == "bad_resume"
    welcome = await client.expect("welcome")
    assert welcome["chat_id"] != first["chat_id"] and welcome["resume"] != first["resume"]


async def test_agent_cannot_write_to_a_chat_it_does_not_hold(hub, rds, lang):
    """An agent's message to someone else's chat is refused with not_allowed."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    _, welcome = await visitor(hub, lang)
    await sam.expect("assigned")
    kim, _ = await agent(hub, rds, f"b-{lang}", [lang], online=False)
    await kim.send(type="message", chat_id=welcome["chat_id"], text="hijack", client_id="h")
    assert (await kim.expect("error"))["code"] == "not_allowed"
    assert await rds.llen(keys.chat_log(welcome["chat_id"])) == 0


async def test_wrong_field_types_get_bad_frame(hub, rds, lang):
    """Fields of the wrong type are refused with bad_frame, one error per frame."""
    await agent(hub, rds, f"a-{lang}", [lang])
    ada, _ = await visitor(hub, lang)
    for frame in ({"type": "message", "text": 42}, {"type": "message", "text": ["a"]},
                  {"type": "typing", "active": "yes"}, {"type": "rate", "score": "5"}, {"type": 7}):
        await ada.ws.send(json.dumps(frame))
        assert (await ada.expect("error"))["code"] in ("bad_frame", "not_allowed")


async def test_healthz_answers_ok_while_redis_answers(hub):
    """GET /healthz is 200 {"status":"ok"} while Redis answers."""
    import urllib.request

    with urllib.request.urlopen(hub.base_url + "/healthz", timeout=5) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"status": "ok"}


async def test_a_refused_message_names_its_client_id(hub, rds, lang):
    """The error refusing a message carries its client_id, so the sender can mark it unsent."""
    await agent(hub, rds, f"a-{lang}", [lang])
    ada, _ = await visitor(hub, lang)
    await ada.send(type="message", text="y" * 4001, client_id="too-long-1")
    refused = await ada.expect("error")
    assert refused["code"] == "too_long" and refused["client_id"] == "too-long-1"


async def test_a_refused_close_names_its_chat_and_frame_type(hub, rds, lang):
    """The error refusing an agent's close carries its chat_id and refused "close"."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    _, welcome = await visitor(hub, lang)
    await sam.expect("assigned")
    kim, _ = await agent(hub, rds, f"b-{lang}", [lang], online=False)
    await kim.send(type="close", chat_id=welcome["chat_id"], resolution="resolved")
    refused = await kim.expect("error")
    assert (refused["code"], refused["chat_id"], refused["refused"]) == ("not_allowed", welcome["chat_id"], "close")


async def test_a_refused_transfer_names_its_chat_and_frame_type(hub, rds, lang):
    """The error refusing a transfer (the target is away) carries the chat_id and refused "transfer"."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    _, welcome = await visitor(hub, lang)
    await sam.expect("assigned")
    await agent(hub, rds, f"b-{lang}", [lang], online=False)
    await sam.send(type="transfer", chat_id=welcome["chat_id"], to=f"b-{lang}")
    refused = await sam.expect("error")
    assert (refused["code"], refused["chat_id"], refused["refused"]) == ("not_allowed", welcome["chat_id"], "transfer")
    assert "agent_unavailable" in refused["message"]
