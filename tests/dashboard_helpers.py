"""Shared pieces of the dashboard and supervisor tests: plain HTTP (http.client, redirects
never followed), accounts, visitors and agents driven by websockets clients, a Playwright
handle on Debian's Chromium, and a strict reader of the Prometheus text format.

Import the fixtures (browser, context, page, visitors, agents) into a test module to use them.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit

import pytest_asyncio
import websockets
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from agents.accounts import save_account
from chat.queue import read_agents
from tests.servers import eventually as _eventually, ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "artifacts" / "dashboard"
TIMEOUT = 15.0  # seconds for any single condition to come true (a loaded machine hashes slowly)
PASSWORD = "dashboard-password-123"


# --- plain HTTP ----------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def cookies(self) -> dict[str, str]:
        """Set-Cookie headers by cookie name (the whole header line as value)."""
        found = {}
        for key, value in self.headers:
            if key.lower() == "set-cookie":
                found[value.split("=", 1)[0].strip()] = value
        return found

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def request(base_url: str, method: str, path: str, body: bytes | str | None = None,
            headers: dict[str, str] | None = None) -> Reply:
    """One HTTP request, no redirect followed, no cookie jar: exactly what the caller sends."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body, headers or {})
        response = conn.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    finally:
        conn.close()


async def arequest(base_url: str, method: str, path: str, body: bytes | str | None = None,
                   headers: dict[str, str] | None = None) -> Reply:
    return await asyncio.to_thread(request, base_url, method, path, body, headers)


def form(**fields: str) -> tuple[str, dict[str, str]]:
    return urlencode(fields), {"Content-Type": "application/x-www-form-urlencoded"}


async def post_login(base_url: str, username: str, password: str, **headers: str) -> Reply:
    """A bare login POST (as a script written from docs/protocol.md sends it), plus any headers."""
    body, base = form(username=username, password=password)
    return await arequest(base_url, "POST", "/agent/login", body, {**base, **headers})


async def session_cookie(base_url: str, username: str, password: str = PASSWORD) -> str:
    """Log in without a browser; return the Cookie header value ("lc_session=...")."""
    reply = await post_login(base_url, username, password)
    line = reply.cookies().get("lc_session")
    assert reply.status == 303 and line, f"login of {username} failed: HTTP {reply.status}"
    return line.split(";", 1)[0]


def fake_address() -> str:
    """A client address of this test's own, passed through uvicorn's trusted-proxy header
    (the test client is on loopback, which uvicorn trusts by default)."""
    return "10.%d.%d.%d" % tuple(secrets.randbelow(250) + 1 for _ in range(3))


# --- accounts ------------------------------------------------------------------------


async def make_account(rds: Any, username: str, lang: str, *, role: str = "agent", name: str | None = None,
                       max_chats: int = 3) -> str:
    await save_account(rds, username, PASSWORD, role=role, name=name or username.split("-")[0].capitalize(),
                       langs=[lang], max_chats=max_chats)
    return username


async def eventually(check: Callable[[], Any], timeout: float = TIMEOUT, message: str = "condition") -> Any:
    """tests.servers.eventually with the browser tests' longer patience."""
    return await _eventually(check, timeout, message=message)


async def agent_status(rds: Any, username: str, status: str) -> None:
    """Wait until the routing profile of an agent shows this status (e.g. after the toggle)."""

    async def check() -> bool:
        profile = (await read_agents(rds)).get(username) or {}
        return profile.get("status") == status

    await eventually(check, message=f"{username} to be {status}")


# --- websockets clients ----------------------------------------------------------------


@dataclass
class Client:
    """A websockets connection that keeps every frame it got, for visitors and agents alike."""

    ws: Any
    frames: list[dict[str, Any]] = field(default_factory=list)
    seen: int = 0

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT) -> dict[str, Any]:
        """The first frame not yet consumed that matches, receiving more as needed."""

        async def scan() -> dict[str, Any]:
            while True:
                while self.seen < len(self.frames):
                    frame = self.frames[self.seen]
                    self.seen += 1
                    if predicate(frame):
                        return frame
                raw = await self.ws.recv()
                self.frames.append(json.loads(raw))

        return await asyncio.wait_for(scan(), timeout)

    async def wait_type(self, kind: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        return await self.wait_for(lambda f: f.get("type") == kind, timeout)

    async def close(self) -> None:
        await self.ws.close()


class Visitor(Client):
    chat_id: str = ""

    async def say(self, text: str) -> dict[str, Any]:
        """Send a message; return its acknowledgement (the message echoed with its seq)."""
        cid = secrets.token_hex(8)
        await self.send(type="message", text=text, client_id=cid)
        return await self.wait_for(lambda f: f.get("type") == "message" and f.get("client_id") == cid)


async def open_visitor(ws_url: str, lang: str, name: str, **hello: Any) -> Visitor:
    ws = await websockets.connect(ws_url + "/ws/visitor")
    visitor = Visitor(ws)
    await visitor.send(type="hello", lang=lang, name=name, **hello)
    welcome = await visitor.wait_type("welcome")
    visitor.chat_id = welcome["chat_id"]
    return visitor


async def open_agent_socket(ws_url: str, cookie: str, path: str = "/ws/agent", **headers: str) -> Client:
    ws = await websockets.connect(ws_url + path, additional_headers={"Cookie": cookie, **headers})
    return Client(ws)


# --- Prometheus text format --------------------------------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(\{{(.*)\}})?\s+(\S+)(\s+-?\d+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_prometheus(text: str) -> dict[str, Any]:
    """Read exposition text strictly; return {"types": {family: type}, "samples": [(name,
    labels, value)]}. Any line that is not HELP, TYPE, a comment or a sample fails."""
    types: dict[str, str] = {}
    samples: list[tuple[str, dict[str, str], float]] = []
    assert text.endswith("\n"), "exposition must end with a newline"
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert re.fullmatch(_NAME, name) and kind in _TYPES, f"line {number}: bad TYPE {line!r}"
            assert name not in types, f"line {number}: second TYPE for {name}"
            types[name] = kind
            continue
        if line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"line {number}: not a sample: {line!r}"
        name, _, raw_labels, value, _ = match.groups()
        labels: dict[str, str] = {}
        rest = raw_labels or ""
        while rest:
            lab = _LABEL.match(rest)
            assert lab, f"line {number}: bad labels {raw_labels!r}"
            labels[lab.group(1)] = lab.group(2)
            rest = rest[lab.end():]
        samples.append((name, labels, float(value)))
    return {"types": types, "samples": samples}


def sample(parsed: dict[str, Any], name: str, **labels: str) -> float | None:
    for sname, slabels, value in parsed["samples"]:
        if sname == name and all(slabels.get(k) == v for k, v in labels.items()):
            return value
    return None


# --- the browser ------------------------------------------------------------------------------


async def screenshot(page: Page, name: str, full_page: bool = False) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def track_errors(page: Page) -> list[str]:
    """Collect script errors and console errors (CSP refusals, failed loads) as page.js_errors."""
    if not hasattr(page, "js_errors"):
        errors: list[str] = []
        page.js_errors = errors  # type: ignore[attr-defined]
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    return page.js_errors  # type: ignore[attr-defined]


async def browser_login(page: Page, base_url: str, username: str, password: str = PASSWORD) -> None:
    """Sign in with the keyboard and mouse, as a person would."""
    track_errors(page)
    await page.goto(base_url + "/agent/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r"/(agent|supervisor)$"))


async def desk_ready(page: Page) -> None:
    """The dashboard has its welcome (or the supervisor view its first snapshot)."""
    await page.locator("body[data-ready='1']").wait_for()


async def go_online(page: Page, rds: Any, username: str) -> None:
    """Switch the dashboard's status toggle to online and wait until routing knows it."""
    await desk_ready(page)
    toggle = page.locator("#status-toggle")
    if "Online" not in (await toggle.inner_text()):
        await toggle.click()
    await agent_status(rds, username, "online")


async def open_desk(context: BrowserContext, base_url: str, rds: Any, username: str, online: bool = True) -> Page:
    page = await context.new_page()
    await browser_login(page, base_url, username)
    if online:
        await go_online(page, rds, username)
    else:
        await desk_ready(page)
    return page


def chat_item(page: Page, name: str):
    """The chat list entry of a visitor, by the visitor's name."""
    return page.locator("#chats li.chat-item").filter(has=page.locator(".chat-name", has_text=name))


# --- fixtures ---------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser():
    """Debian's Chromium, headless, driven by Playwright (no browser is ever downloaded)."""
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Browser):
    """A fresh browser profile per test (own cookies, storage and cache)."""
    ctx = await browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(TIMEOUT * 1000)
    yield ctx
    await ctx.close()


@pytest_asyncio.fixture(loop_scope="session")
async def visitors(hub):
    """Open visitors on the session hub; every one is closed at the end of the test."""
    made: list[Visitor] = []

    async def make(lang: str, name: str, **hello: Any) -> Visitor:
        visitor = await open_visitor(hub.ws_url, lang, name, **hello)
        made.append(visitor)
        return visitor

    yield make
    for visitor in made:
        await visitor.close()


@pytest_asyncio.fixture(loop_scope="session")
async def sockets(hub):
    """Agent or supervisor sockets opened with a session cookie; closed at the end of the test."""
    made: list[Client] = []

    async def make(cookie: str, path: str = "/ws/agent", **headers: str) -> Client:
        client = await open_agent_socket(hub.ws_url, cookie, path, **headers)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()
