"""Hostile requests on the HTTP side: forged session cookies on every endpoint that needs a
session, cross-origin dashboard sockets, path traversal in static routes and in the export
command, malformed login posts. Each is refused clearly; nothing is created in Redis; the
hub keeps serving everyone else."""

from __future__ import annotations

import asyncio
from http.client import HTTPConnection
import os
import subprocess
import urllib.parse

import pytest
import websockets
from itsdangerous import TimestampSigner

from agents.sessions import COOKIE
from chat import keys
from tests.support.clients import agent, create_agent, login_cookie, visitor
from tests.support.http import http
from tests.support.servers import hub_env, LIVECHAT

SESSION_PAGES = ["/api/queue", "/api/agents", "/api/canned", "/api/tickets", "/api/tickets/LC-7K3F9Q"]
BROWSER_PAGES = ["/agent", "/supervisor"]
SOCKETS = ["/ws/agent", "/ws/supervisor"]


async def forged_cookies(rds) -> dict[str, str]:
    """Cookie values an attacker might try, down to a correctly signed id of no session."""
    secret = await rds.get(keys.SERVER_SECRET)
    right = TimestampSigner(secret, salt="livechat.session")
    wrong = TimestampSigner(b"guessed-secret", salt="livechat.session")
    return {
        "junk": "not-a-session",
        "empty signature": "abc.",
        "wrong key": wrong.sign("x" * 32).decode(),
        "signed, no such session": right.sign("no-such-session-id").decode(),
        "signed, path in id": right.sign("../../secret").decode(),
        "huge": "A" * 6000,
        "unicode": "s\u00e9ssion\u202e",
        "quotes and semicolons": '"x"; lc_session=y',
    }


async def session_count(rds) -> int:
    return len([k async for k in rds.scan_iter(match=keys.session("*"), count=1000)])


async def test_forged_session_cookies_are_refused_everywhere(hub, rds, lang):
    """Every forged cookie: 401 from the APIs, the login page from the dashboards, 1008 on
    the dashboard sockets; no session appears in Redis."""
    sessions = await session_count(rds)
    for name, value in (await forged_cookies(rds)).items():
        cookie = f"{COOKIE}={urllib.parse.quote(value)}" if name == "unicode" else f"{COOKIE}={value}"
        for path in SESSION_PAGES:
            status, _ = http(hub.base_url + path, headers={"Cookie": cookie, "Accept": "application/json"})
            assert status == 401, (name, path, status)
        for path in BROWSER_PAGES:
            status, body = http(hub.base_url + path, headers={"Cookie": cookie})
            assert status == 200 and b"password" in body.lower(), (name, path, status)  # the login form
        for path in SOCKETS:
            async with websockets.connect(hub.ws_url + path, additional_headers={"Cookie": cookie}) as ws:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 10)
                assert closed.value.rcvd.code == 1008, (name, path)
    assert await session_count(rds) == sessions
    await chat_still_works(hub, rds, lang)


async def test_a_logged_out_session_cookie_is_dead(hub, rds, lang):
    """After logout (session deleted in Redis) the same signed cookie opens nothing."""
    await create_agent(rds, f"a-{lang}", [lang])
    cookie = await asyncio.to_thread(login_cookie, hub, f"a-{lang}")
    assert http(hub.base_url + "/api/agents", headers={"Cookie": cookie})[0] == 200
    page = http(hub.base_url + "/agent", headers={"Cookie": cookie})[1].decode()
    token = page.split('data-csrf="', 1)[1].split('"', 1)[0]
    http(hub.base_url + "/agent/logout", method="POST", data=urllib.parse.urlencode({"csrf": token}).encode(),
         headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
    assert http(hub.base_url + "/api/agents", headers={"Cookie": cookie})[0] == 401
    async with websockets.connect(hub.ws_url + "/ws/agent", additional_headers={"Cookie": cookie}) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd.code == 1008


async def test_an_agent_session_opens_no_supervisor_door(hub, rds, lang):
    """An agent's real session: 403 on the supervisor APIs, 1008 on the supervisor socket."""
    await create_agent(rds, f"a-{lang}", [lang])
    cookie = await asyncio.to_thread(login_cookie, hub, f"a-{lang}")
    for path in ("/api/queue",):  # tickets are for agents too
        assert http(hub.base_url + path, headers={"Cookie": cookie, "Accept": "application/json"})[0] == 403
    async with websockets.connect(hub.ws_url + "/ws/supervisor", additional_headers={"Cookie": cookie}) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd.code == 1008


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1.evil.example",
                                    "http://evil.example/?http://127.0.0.1", "file://", "chrome-extension://abc"])
@pytest.mark.parametrize("path", SOCKETS)
async def test_cross_origin_dashboard_sockets_are_closed_1008(hub, rds, lang, origin, path):
    """A page on another origin cannot ride a supervisor's cookie into a dashboard socket."""
    await create_agent(rds, f"s-{lang}", [lang], role="supervisor")
    cookie = await asyncio.to_thread(login_cookie, hub, f"s-{lang}")
    async with websockets.connect(hub.ws_url + path, additional_headers={"Cookie": cookie, "Origin": origin}) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd.code == 1008


TRAVERSALS = [
    "/widget/..%2F..%2Fchat%2Fapp.py", "/widget/%2e%2e/%2e%2e/pyproject.toml", "/widget/....//....//etc/passwd",
    "/demo/..%2F..%2F..%2Fetc%2Fpasswd", "/demo/%2e%2e%2fapp.py", "/agent/static/../../chat/app.py",
    "/agent/static/%2e%2e/%2e%2e/chat/app.py", "/agent/static/..%5c..%5cchat%5capp.py", "/widget/%00widget.js",
    "/api/tickets/..%2F..%2Fetc%2Fpasswd", "//etc/passwd", "/widget.js/../../pyproject.toml",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_in_static_routes_reads_nothing(hub, path):
    """Encoded dots, backslashes and NULs in a path never reach a file outside its folder."""
    conn = HTTPConnection("127.0.0.1", hub.port, timeout=5)
    conn.request("GET", path)  # sent as written, not normalized by a client library
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status in (400, 401, 404), (path, response.status)
    for secret in (b"root:x:0:0", b"[build-system]", b"def create_app", b"import "):
        assert secret not in body


def export(redis_url: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = hub_env(redis_url, tmp_path / "cli")
    return subprocess.run([LIVECHAT, "transcript", "export", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("target", ["../../etc/passwd", "/etc/passwd", "..", "LC-../../x", "%2e%2e%2fetc",
                                    "chat:{x}:log", "*", "lc:secret", "x" * 5000])
def test_export_refuses_a_path_or_pattern_as_its_target(redis_url, tmp_path, target):
    """`livechat transcript export TARGET` takes a chat id or a ticket reference, nothing else."""
    result = export(redis_url, tmp_path, target)
    assert result.returncode != 0
    assert "livechat transcript:" in result.stderr
    assert "root:x:0:0" not in result.stdout and result.stdout == ""


@pytest.mark.parametrize("out", ["../../escape.txt", "/tmp/../etc/livechat-escape.txt", "/etc/cron.d/livechat",
                                 "sub/../../escape.txt"])
async def test_export_refuses_to_write_outside_its_folders(redis_url, hub, sockets, tmp_path, lang, out):
    """--out outside the current folder and the data folder is refused; no file appears."""
    visitor, _ = await sockets.visitor(hub, lang, name="Ada")  # a chat with one message
    await visitor.say("hello")
    chat_id = visitor.chat_id
    assert export(redis_url, tmp_path, chat_id).returncode == 0  # it exists and exports to stdout
    (tmp_path / "work").mkdir()
    result = export(redis_url, tmp_path / "work", chat_id, "--out", out)
    assert result.returncode != 0 and "outside" in result.stderr
    target = (tmp_path / "work" / out).resolve() if not os.path.isabs(out) else os.path.realpath(out)
    assert not os.path.exists(target)


@pytest.mark.parametrize("body,ctype", [
    (b"username=" + b"a" * 200_000 + b"&password=x", "application/x-www-form-urlencoded"),
    (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded"),
    (b"--x\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nabc", "multipart/form-data; boundary=x"),
    (b"username=%00%0a%0d&password=%ff", "application/x-www-form-urlencoded"),
    (b'{"username": "a", "password": "b"}', "application/json"),
])
async def test_malformed_login_posts_are_refused_without_a_session(hub, rds, lang, body, ctype):
    """Oversized, non-UTF-8, truncated multipart or JSON login bodies: a 4xx, no session."""
    sessions = await session_count(rds)
    status, _ = http(hub.base_url + "/agent/login", method="POST", data=body, headers={"Content-Type": ctype})
    assert 400 <= status < 500
    assert await session_count(rds) == sessions
    assert http(hub.base_url + "/healthz")[0] == 200


async def chat_still_works(hub, rds, lang: str) -> None:
    sam, _ = await agent(hub, rds, f"ok-{lang}", [lang])
    ada, _ = await visitor(hub, lang)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    await ada.send(type="message", text="fine", client_id="f")
    assert (await sam.expect("message", chat_id=chat_id, client_id="f"))["text"] == "fine"
    await ada.close()
    await sam.close()
