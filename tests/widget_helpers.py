"""Shared pieces of the widget's browser tests: a host site on its own origin, an agent driven
by a websockets client, a Playwright handle on the widget, and the browser fixtures.

The host site is a separate loopback HTTP server (not the hub), so the widget runs cross-origin
as it does on a customer's site, and each page can carry its own CSP header and CSS.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
import websockets
from playwright.async_api import Browser, BrowserContext, Locator, Page, async_playwright

from redis.asyncio import Redis

from agents.accounts import save_account
from chat.embedded_redis import EmbeddedRedis
from tests.servers import ROOT, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "artifacts" / "widget"
TIMEOUT = 20.0  # seconds for any single condition to come true (generous: CI machines get busy)
AGENT_PASSWORD = "agent-password-123"


# --- the host site ----------------------------------------------------------------


@dataclass
class Resource:
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


class HostSite:
    """A tiny threaded HTTP server on loopback that serves whatever pages a test registers."""

    def __init__(self) -> None:
        self.port = free_port()
        self.resources: dict[str, Resource] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                res = site.resources.get(urlsplit(self.path).path)
                if res is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", res.content_type)
                self.send_header("Content-Length", str(len(res.body)))
                self.send_header("Cache-Control", "no-store")
                for name, value in res.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(res.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.origin + path

    def add(self, path: str, body: str, content_type: str = "text/html; charset=utf-8", **headers: str) -> str:
        """Serve body at path (headers given with underscores, e.g. Content_Security_Policy)."""
        self.resources[path] = Resource(body.encode(), content_type, {k.replace("_", "-"): v for k, v in headers.items()})
        return self.url(path)

    def start(self) -> "HostSite":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def host_page(hub_url: str, chat_lang: str, *, title: str = "Lumen Mail", head: str = "", attrs: str = "",
              body: str = "", next_href: str = "") -> str:
    """A company page that embeds the widget with one script tag and no inline script or style."""
    link = f'<a id="next" href="{next_href}">Pricing</a>' if next_href else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>{head}</head>
<body><h1>{title}</h1><p>Private email for everyone.</p>{link}
<div class="content"><button type="button" id="host-button">A host button</button></div>{body}
<script src="{hub_url}/widget.js" data-site="default" data-chat-lang="{chat_lang}" {attrs} async></script>
</body></html>"""


# --- an agent on a websockets client ---------------------------------------------


class Agent:
    """One agent signed in over HTTP and connected to /ws/agent; a reader task keeps every frame."""

    def __init__(self, ws: Any, username: str):
        self.ws = ws
        self.username = username
        self.frames: list[dict[str, Any]] = []
        self._seen = 0
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                self.frames.append(json.loads(data))
                self._arrived.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self._arrived.set()

    @classmethod
    async def connect(cls, hub: Any, rds: Any, lang: str, *, name: str = "Sam", max_chats: int = 3,
                      username: str | None = None, online: bool = True) -> "Agent":
        username = username or f"a-{lang}"
        await save_account(rds, username, AGENT_PASSWORD, name=name, langs=[lang], max_chats=max_chats)
        cookie = await asyncio.to_thread(login, hub.base_url, username, AGENT_PASSWORD)
        ws = await websockets.connect(hub.ws_url + "/ws/agent", additional_headers={"Cookie": cookie})
        agent = cls(ws, username)
        await agent.wait_for(lambda f: f.get("type") == "welcome")
        if online:
            await agent.send(type="status", status="online")
            await agent.wait_for(lambda f: f.get("type") == "status" and f.get("status") == "online")
        return agent

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    async def until(self, check: Callable[[list[dict[str, Any]]], Any], timeout: float = TIMEOUT) -> Any:
        """Wait until check(all frames so far) is truthy; return its value."""

        async def wait() -> Any:
            while True:
                self._arrived.clear()
                value = check(self.frames)
                if value:
                    return value
                if self._reader.done():
                    raise AssertionError(f"agent socket closed; frames: {self.frames[-5:]}")
                await self._arrived.wait()

        return await asyncio.wait_for(wait(), timeout)

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT) -> dict[str, Any]:
        """The first frame not yet consumed by wait_for that matches."""

        def scan(frames: list[dict[str, Any]]) -> dict[str, Any] | None:
            while self._seen < len(frames):
                frame = frames[self._seen]
                self._seen += 1
                if predicate(frame):
                    return frame
            return None

        return await self.until(scan, timeout)

    def frames_of(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == kind]

    def view(self, chat_id: str) -> dict[int, str]:
        """seq -> text of every message of one chat this agent was shown (histories in welcome and
        assigned frames, and live frames); fails if one seq ever came with two different texts."""
        seen: dict[int, str] = {}
        entries = [c for f in self.frames_of("welcome") for c in f.get("chats", [])] + self.frames_of("assigned")
        messages = [m for e in entries if e["chat_id"] == chat_id for m in e.get("history", [])]
        messages += [f for f in self.frames_of("message") if f.get("chat_id") == chat_id]
        for m in messages:
            assert seen.setdefault(m["seq"], m["text"]) == m["text"], m
        return seen

    async def assigned(self, timeout: float = TIMEOUT) -> str:
        """Wait for a chat to be given to this agent; return its chat_id."""
        frame = await self.wait_for(lambda f: f.get("type") == "assigned", timeout)
        return frame["chat_id"]

    async def got(self, text: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Wait for a live message frame with this text."""
        return await self.wait_for(lambda f: f.get("type") == "message" and f.get("text") == text, timeout)

    async def say(self, chat_id: str, text: str, client_id: str) -> None:
        await self.send(type="message", chat_id=chat_id, text=text, client_id=client_id)

    async def close(self) -> None:
        await self.ws.close()
        await self._reader


def login(base_url: str, username: str, password: str) -> str:
    """POST /agent/login like a script would (no redirect followed); return the Cookie header."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    body = f"username={username}&password={password}"
    conn.request("POST", "/agent/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    response.read()
    conn.close()
    cookies = [h for k, h in response.getheaders() if k.lower() == "set-cookie"]
    for header in cookies:
        match = re.match(r"\s*(lc_session=[^;]+)", header)
        if match:
            return match.group(1)
    raise AssertionError(f"login of {username} failed: HTTP {response.status}")


async def eventually(check: Callable[[], Any], timeout: float = TIMEOUT, message: str = "condition") -> Any:
    """Poll an async condition until it is truthy (a condition wait, never a fixed sleep)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await asyncio.sleep(0.02)


# --- the widget in a page -----------------------------------------------------------


class Widget:
    """Locators inside the widget's (open) shadow root; Playwright's CSS engine pierces it."""

    def __init__(self, page: Page):
        self.page = page
        w = page.locator("livechat-widget")
        self.launcher: Locator = w.locator("button.launch")
        self.panel: Locator = w.locator(".panel")
        self.form: Locator = w.locator("form.pre")
        self.status: Locator = w.locator(".status")
        self.log: Locator = w.locator("ol.log")
        self.messages: Locator = w.locator("ol.log li.m:not(.system)")
        self.composer: Locator = w.locator(".say textarea")
        self.offline: Locator = w.locator(".box.offline")
        self.ticket: Locator = w.locator(".ticket .ref")
        self.closed: Locator = w.locator(".closed")
        self.rating: Locator = w.locator("form.rate")
        self.typing: Locator = w.locator(".typing")

    def field(self, label: str) -> Locator:
        return self.form.get_by_label(label, exact=True)

    async def start_chat(self, name: str = "Ada", question: str = "", topic: str = "technical") -> None:
        """Open the panel and fill in the pre-chat form with the mouse and keyboard."""
        if not await self.panel.is_visible():
            await self.launcher.click()
        await self.field("Name").fill(name)
        await self.form.locator("select").first.select_option(topic)
        if question:
            await self.field("Your question").fill(question)
        await self.form.get_by_role("button", name="Start chat").click()

    async def say(self, text: str) -> None:
        await self.composer.fill(text)
        await self.composer.press("Enter")

    async def texts(self) -> list[str]:
        return await self.messages.locator(".tx").all_inner_texts()

    async def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


# --- fixtures (import them into a test module to use them) --------------------------

# Each importing module gets its own copy of a session fixture; this keeps one of each per run.
_shared: dict[str, Any] = {"users": 0}


@pytest.fixture(scope="session")
def host_site():
    """The company site embedding the widget, on an origin of its own (one per session)."""
    if "site" not in _shared:
        _shared["site"] = HostSite().start()
    yield _shared["site"]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser():
    """Debian's Chromium, headless, driven by Playwright (no browser is ever downloaded).
    Each test module imports this fixture; they all share one browser process."""
    if not _shared["users"]:
        _shared["pw"] = await async_playwright().start()
        _shared["browser"] = await _shared["pw"].chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    _shared["users"] += 1
    yield _shared["browser"]
    _shared["users"] -= 1
    if not _shared["users"]:
        await _shared["browser"].close()
        await _shared["pw"].stop()


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Browser):
    """A fresh browser profile per test (own sessionStorage, cookies and cache)."""
    ctx: BrowserContext = await browser.new_context(locale="en-US", viewport={"width": 1100, "height": 800})
    ctx.set_default_timeout(TIMEOUT * 1000)
    yield ctx
    await ctx.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(context: BrowserContext):
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # type: ignore[attr-defined]
    return page


@pytest_asyncio.fixture(loop_scope="session")
async def make_agent(hub, rds):
    """Connect agents on the session hub (closed at the end of the test)."""
    made: list[Agent] = []

    async def make(lang: str, **kwargs: Any) -> Agent:
        agent = await Agent.connect(kwargs.pop("on", hub), rds, lang, **kwargs)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        await agent.close()


@pytest_asyncio.fixture(loop_scope="session")
async def own_redis(data_root, lang):
    """A Redis of this test's own, for a test that runs its own hub with its own timings: the
    session hub's duties (short grace periods, its own max_wait) must not act on its chats."""
    server = EmbeddedRedis(data_root / f"redis-{lang}", tie_to_parent=True)
    server.start()
    client = Redis.from_url(server.url)
    yield server.url, client
    await client.aclose()
    server.stop()
