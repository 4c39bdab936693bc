"""No client address in the hub's log, at any level (docs/security.md). uvicorn names the
client in lines of its own ('198.51.100.20:0 - "WebSocket /ws/visitor" [accepted]', at info
level whatever access_log says) and the websockets library logs request headers at debug
level; a hub behind a proxy gets the address from X-Forwarded-For. Here a hub runs at debug
level and is reached from forwarded addresses (uvicorn trusts the header from loopback)."""

from __future__ import annotations

import asyncio

import pytest
import websockets
from tests.support.clients import Client, create_agent, PASSWORD
from tests.support.http import arequest, post_login
from tests.support.servers import hub_env, HubProcess
from tests.support.waiting import eventually


ACCEPTED = '"WebSocket /ws/visitor" [accepted]'


@pytest.fixture(scope="module")
def debug_hub(redis_url, tmp_path_factory, test_config_path):
    """`livechat serve` logging at debug level, into a log file of its own."""
    root = tmp_path_factory.mktemp("debug-hub")
    process = HubProcess(hub_env(redis_url, root, test_config_path, LIVECHAT_LOG_LEVEL="debug"), root)
    process.start()
    yield process
    process.terminate()


@pytest.mark.parametrize("address", ["198.51.100.20", "2001:db8:5:6:7:8:9:20"])
async def test_no_log_line_names_a_forwarded_client_address(debug_hub, rds, lang, address):
    """Sockets, logins, HTTP errors and a malformed request from a forwarded address: no log line shows it."""
    forwarded = {"X-Forwarded-For": address}
    before = debug_hub.log_tail(10**7).count(ACCEPTED)
    username = f"a-{lang}"
    await create_agent(rds, username, [lang])
    assert (await post_login(debug_hub.base_url, username, "wrong password", **forwarded)).status == 401
    login = await post_login(debug_hub.base_url, username, PASSWORD, **forwarded)
    cookie = login.cookies()["lc_session"].split(";", 1)[0]
    sam = Client(await websockets.connect(debug_hub.ws_url + "/ws/agent", ping_interval=None,
                                          additional_headers={"Cookie": cookie, **forwarded}))
    await sam.expect("welcome")
    await sam.send(type="status", status="online")
    await sam.expect("status", status="online")
    ada = Client(await websockets.connect(debug_hub.ws_url + "/ws/visitor", ping_interval=None,
                                          additional_headers=forwarded))
    await ada.send(type="hello", lang=lang)
    chat_id = (await ada.expect("welcome"))["chat_id"]
    await sam.expect("assigned", chat_id=chat_id)
    await ada.send(type="message", text="hello", client_id="m1")
    await sam.expect("message", chat_id=chat_id, client_id="m1")
    await ada.send(type="leave")
    await sam.expect("closed", chat_id=chat_id)
    stranger = Client(await websockets.connect(debug_hub.ws_url + "/ws/agent", ping_interval=None,
                                               additional_headers=forwarded))
    assert await stranger.closed_code() == 1008
    assert (await arequest(debug_hub.base_url, "GET", "/no-such-page", headers=forwarded)).status == 404
    assert (await arequest(debug_hub.base_url, "GET", "/healthz", headers=forwarded)).status == 200
    reader, writer = await asyncio.open_connection("127.0.0.1", debug_hub.port)
    writer.write(f"GET /\x01 HTTP/1.1\r\nX-Forwarded-For: {address}\r\n\r\n".encode())  # not HTTP: 400
    assert (await reader.read()).startswith(b"HTTP/1.1 400")
    writer.close()
    await asyncio.gather(ada.close(), sam.close())

    log = await eventually(lambda: (text := debug_hub.log_tail(10**7)).count(ACCEPTED) > before and text,
                           message="the hub to log the visitor socket")
    assert address not in log


async def test_no_log_line_carries_a_session_cookie_or_chat_text(debug_hub, rds, lang):
    """Even at debug level the log holds neither an agent's session cookie nor what visitors write."""
    username = f"c-{lang}"
    await create_agent(rds, username, [lang])
    login = await post_login(debug_hub.base_url, username, PASSWORD)
    cookie = login.cookies()["lc_session"].split(";", 1)[0]
    sam = Client(await websockets.connect(debug_hub.ws_url + "/ws/agent", ping_interval=None,
                                          additional_headers={"Cookie": cookie}))
    await sam.expect("welcome")
    await sam.send(type="status", status="online")
    await sam.expect("status", status="online")
    ada = Client(await websockets.connect(debug_hub.ws_url + "/ws/visitor", ping_interval=None))
    await ada.send(type="hello", lang=lang)
    chat_id = (await ada.expect("welcome"))["chat_id"]
    await sam.expect("assigned", chat_id=chat_id)
    secret_text = f"my account number is {lang}-7731"
    await ada.send(type="message", text=secret_text, client_id="m1")
    await sam.expect("message", chat_id=chat_id, client_id="m1")
    await ada.send(type="leave")
    await sam.expect("closed", chat_id=chat_id)
    await asyncio.gather(ada.close(), sam.close())
    log = debug_hub.log_tail(10**7)
    assert cookie.split("=", 1)[1] not in log and secret_text not in log


async def test_at_info_level_the_hub_logs_no_line_per_socket(hub, lang):
    """A hub at the default level logs its start but no uvicorn line per visitor socket."""
    ada = Client(await websockets.connect(hub.ws_url + "/ws/visitor", ping_interval=None))
    await ada.send(type="hello", lang=lang)
    await ada.expect("welcome")  # uvicorn logs "[accepted]" before the handshake completes
    await ada.close()
    log = hub.log_tail(10**7)
    assert "Application startup complete" in log
    assert ACCEPTED not in log and "connection open" not in log
