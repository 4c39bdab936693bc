"""The browser tests' pieces: Debian's Chromium driven by Playwright (the fixtures in
tests/conftest.py launch it once a session), a host site on its own origin, a handle on the
widget in a page, and the dashboard signed in with the keyboard and mouse.

The host site is a separate loopback HTTP server (not the hub), so the widget runs cross-origin
as it does on a customer's site, and each page can carry its own CSP header and CSS.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import BrowserContext, Locator, Page, expect

from chat.queue import read_agents
from tests.support.clients import PASSWORD
from tests.support.servers import ROOT, free_port
from tests.support.waiting import eventually

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "artifacts"  # screenshots: widget/ and dashboard/
TIMEOUT = 20.0  # seconds for any single condition in a page to come true (generous: CI machines get busy)

expect.set_options(timeout=TIMEOUT * 1000)  # Playwright's assertions in every browser test


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
        await screenshot(self.page, name, folder="widget")


async def screenshot(page: Page, name: str, full_page: bool = False, folder: str = "dashboard") -> None:
    (ARTIFACTS / folder).mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / folder / f"{name}.png"), full_page=full_page)


# --- the dashboard ----------------------------------------------------------------------


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


async def agent_status(rds: Any, username: str, status: str) -> None:
    """Wait until the routing profile of an agent shows this status (e.g. after the toggle)."""

    async def check() -> bool:
        profile = (await read_agents(rds)).get(username) or {}
        return profile.get("status") == status

    await eventually(check, TIMEOUT, message=f"{username} to be {status}")


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
