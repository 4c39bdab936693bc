"""GET /api/tickets and /api/tickets/{ref}: supervisors only, JSON or a readable HTML page."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest
import uvicorn
from starlette.applications import Starlette

from agents.accounts import save_account
from agents.sessions import COOKIE, open_session
from transcripts import views
from transcripts.tickets import open_ticket
from tests.support.servers import free_port
from tests.support.transcripts import make_chat
from tests.support.waiting import eventually

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture
async def web(rt):
    """The ticket routes served by a real uvicorn on a loopback port, with the test's Runtime."""
    app = Starlette(routes=views.routes)
    app.state.rt = rt
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, message="uvicorn started")
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    await task


async def login(rt, tdb, lang: str, role: str) -> str:
    account = await save_account(tdb, f"{role[:3]}-{lang}", "correct horse battery", role=role)
    value, _session = await open_session(rt, account)
    return f"{COOKIE}={value}"


async def get(url: str, cookie: str | None = None, accept: str = "*/*") -> tuple[int, dict, str]:
    def fetch():
        request = urllib.request.Request(url, headers={"Accept": accept, **({"Cookie": cookie} if cookie else {})})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    return await asyncio.to_thread(fetch)


async def test_ticket_needs_a_session(rt, tdb, web):
    """Without a session cookie the ticket is 401."""
    ref = await open_ticket(rt, await make_chat(rt), "offline")
    status, _, body = await get(f"{web}/api/tickets/{ref}")
    assert status == 401 and ref not in body


async def test_agents_read_tickets_too(rt, tdb, web, lang):
    """Agents answer tickets, so an agent's session reads one as a supervisor's does."""
    ref = await open_ticket(rt, await make_chat(rt), "offline")
    status, _, _ = await get(f"{web}/api/tickets/{ref}", await login(rt, tdb, lang, "agent"))
    assert status == 200


async def test_unknown_ticket_is_404(rt, tdb, web, lang):
    """A well-formed but unknown reference, or a malformed one, is 404."""
    cookie = await login(rt, tdb, lang, "supervisor")
    assert (await get(f"{web}/api/tickets/LC-ZZZZZZ", cookie))[0] == 404
    assert (await get(f"{web}/api/tickets/..%2F..%2Fetc%2Fpasswd", cookie))[0] == 404


async def test_supervisor_gets_ticket_json_with_transcript(rt, tdb, web, lang):
    """A supervisor gets the ticket as JSON, transcript included, never cached."""
    ref = await open_ticket(rt, await make_chat(rt, [("visitor", "Where is my refund?")]), "offline")
    status, headers, body = await get(f"{web}/api/tickets/{ref.lower()}", await login(rt, tdb, lang, "supervisor"))
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert headers["cache-control"] == "no-store"
    ticket = json.loads(body)
    assert ticket["ref"] == ref and ticket["email"] == "ada@example.org"
    assert [m["text"] for m in ticket["transcript"]] == ["Where is my refund?"]


async def test_browser_gets_an_escaped_html_page(rt, tdb, web, lang):
    """A browser (Accept: text/html) gets a readable page where the visitor's markup is text."""
    chat_id = await make_chat(rt, [("visitor", "<script>alert(1)</script>")], name="<i>Eve</i>")
    ref = await open_ticket(rt, chat_id, "offline")
    status, headers, body = await get(f"{web}/api/tickets/{ref}", await login(rt, tdb, lang, "supervisor"), BROWSER)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "<script>alert" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;i&gt;Eve&lt;/i&gt;" in body and ref in body
    assert "default-src 'none'" in headers["content-security-policy"]


async def test_ticket_list_pages_and_filters_by_status(rt, tdb, web, lang):
    """The list is paged (newest first on request) and can be limited to one status."""
    refs = [await open_ticket(rt, await make_chat(rt), "offline") for _ in range(3)]
    cookie = await login(rt, tdb, lang, "supervisor")
    status, _, body = await get(f"{web}/api/tickets?page=1&per_page=2&sort=newest", cookie)
    first = json.loads(body)
    assert status == 200 and first["total"] == 3 and first["pages"] == 2
    assert [t["ref"] for t in first["tickets"]] == [refs[2], refs[1]]
    second = json.loads((await get(f"{web}/api/tickets?page=2&per_page=2&sort=newest", cookie))[2])
    assert [t["ref"] for t in second["tickets"]] == [refs[0]]
    assert json.loads((await get(f"{web}/api/tickets?status=solved", cookie))[2])["total"] == 0
    assert json.loads((await get(f"{web}/api/tickets?status=open", cookie))[2])["total"] == 3
    assert (await get(f"{web}/api/tickets?status=closed", cookie))[0] == 400  # no ticket can be closed yet
    assert (await get(f"{web}/api/tickets?status=bogus", cookie))[0] == 400
    assert (await get(f"{web}/api/tickets?page=0", cookie))[0] == 400


async def test_ticket_list_needs_a_session(rt, tdb, web, lang):
    """The list is 401 without a session, and open to agents as to supervisors."""
    assert (await get(f"{web}/api/tickets"))[0] == 401
    assert (await get(f"{web}/api/tickets", await login(rt, tdb, lang, "agent")))[0] == 200


async def test_ticket_list_html_links_each_ticket(rt, tdb, web, lang):
    """A browser gets an HTML list linking to each ticket."""
    ref = await open_ticket(rt, await make_chat(rt), "offline")
    status, _, body = await get(f"{web}/api/tickets", await login(rt, tdb, lang, "supervisor"), BROWSER)
    assert status == 200 and f'href="/api/tickets/{ref}"' in body
