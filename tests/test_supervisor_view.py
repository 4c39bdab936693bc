"""The supervisor view in real Chromium, and who may open it."""

from __future__ import annotations

import asyncio
import pytest
from playwright.async_api import expect
from websockets.exceptions import ConnectionClosed
from tests.support.browser import browser_login, desk_ready, open_desk, screenshot
from tests.support.clients import create_agent, login_cookie
from tests.support.http import arequest




async def _busy_agent(hub, rds, lang, sockets):
    """An online agent with room for one chat only, so that further visitors wait in line."""
    user = await create_agent(rds, f"a-{lang}", [lang], max_chats=1)
    agent = await sockets.cookie(hub, await asyncio.to_thread(login_cookie, hub, user))
    await agent.wait_type("welcome")
    await agent.send(type="status", status="online")
    await agent.wait_type("status")
    return agent


async def test_supervisor_sees_queue_depth_change_as_visitors_arrive_and_leave(hub, rds, lang, context, visitors, sockets):
    """Waiting counts for the test's language go up as visitors queue and down as one leaves."""
    supervisor = await create_agent(rds, f"s-{lang}", [lang], role="supervisor")
    page = await context.new_page()
    await browser_login(page, hub.base_url, supervisor)
    assert page.url.endswith("/supervisor")
    await desk_ready(page)
    await _busy_agent(hub, rds, lang, sockets)
    first = await visitors(lang, "Ada")
    await first.wait_type("assigned")
    row = page.locator(f"#langs-table tr[data-lang='{lang}'] td")
    await expect(row).to_have_count(0)

    second = await visitors(lang, "Bob")
    await second.wait_type("queued")
    third = await visitors(lang, "Cleo", topic="billing")
    await third.wait_type("queued")
    await expect(row).to_have_text("2")
    await expect(page.locator(f"#agents-table tr[data-agent='a-{lang}'] td.num")).to_have_text("1 / 1")
    await screenshot(page, "supervisor-view", full_page=True)

    await third.send(type="leave")
    await third.wait_type("closed")
    await expect(row).to_have_text("1")
    await second.send(type="leave")
    await expect(row).to_have_count(0)


async def test_supervisor_view_draws_the_queue_depth_chart(hub, rds, lang, context):
    """The one-hour chart is an inline SVG drawn by the page, with a line for the depth."""
    supervisor = await create_agent(rds, f"s-{lang}", [lang], role="supervisor")
    page = await context.new_page()
    await browser_login(page, hub.base_url, supervisor)
    await desk_ready(page)
    await expect(page.locator("#depth-chart svg path.chart-line")).to_have_count(1)
    await expect(page.locator("#waiting-total")).not_to_have_text("–")
    assert page.js_errors == []


async def test_deleting_a_canned_reply_says_deleted(hub, rds, lang, context):
    """Saving a canned reply says "Saved."; deleting it from its row says "Deleted." and the row goes."""
    supervisor = await create_agent(rds, f"s-{lang}", [lang], role="supervisor")
    page = await context.new_page()
    await browser_login(page, hub.base_url, supervisor)
    await desk_ready(page)
    shortcut = f"bye-{lang}"
    await page.locator("#canned-shortcut").fill(shortcut)
    await page.locator("#canned-text").fill("Goodbye, and thank you for your patience.")
    await page.get_by_role("button", name="Save reply").click()
    await expect(page.locator("#canned-status")).to_have_text("Saved.")
    row = page.locator("#canned-table tbody tr").filter(has=page.locator("th", has_text="/" + shortcut))
    await expect(row).to_have_count(1)
    await row.get_by_role("button", name="Delete").click()
    await expect(page.locator("#canned-status")).to_have_text("Deleted.")
    await expect(row).to_have_count(0)
    assert page.js_errors == []


async def test_agent_cannot_open_the_supervisor_page(hub, rds, lang, context):
    """An agent's session gets 403 on /supervisor, in the browser and over plain HTTP."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    cookie = await asyncio.to_thread(login_cookie, hub, user)
    reply = await arequest(hub.base_url, "GET", "/supervisor", headers={"Cookie": cookie})
    assert reply.status == 403
    page = await open_desk(context, hub.base_url, rds, user, online=False)
    answer = await page.goto(hub.base_url + "/supervisor")
    assert answer.status == 403
    await expect(page.get_by_role("heading", name="Supervisors only")).to_be_visible()


async def test_agent_socket_on_ws_supervisor_is_closed_with_1008(hub, rds, lang, sockets):
    """/ws/supervisor closes an agent's connection with policy violation (1008)."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    client = await sockets.cookie(hub, await asyncio.to_thread(login_cookie, hub, user), "/ws/supervisor")
    with pytest.raises(ConnectionClosed) as closed:
        await client.ws.recv()
    assert closed.value.rcvd.code == 1008


async def test_ws_supervisor_without_a_session_is_closed_with_1008(hub, sockets):
    """/ws/supervisor closes a connection without a session cookie with 1008."""
    client = await sockets.cookie(hub, "lc_session=forged.value.here", "/ws/supervisor")
    with pytest.raises(ConnectionClosed) as closed:
        await client.ws.recv()
    assert closed.value.rcvd.code == 1008


async def test_ws_supervisor_refuses_a_foreign_origin(hub, rds, lang, sockets):
    """A supervisor cookie presented from another site's page is refused (1008)."""
    user = await create_agent(rds, f"s-{lang}", [lang], role="supervisor")
    client = await sockets.cookie(hub, await asyncio.to_thread(login_cookie, hub, user), "/ws/supervisor", Origin="http://evil.example")
    with pytest.raises(ConnectionClosed) as closed:
        await client.ws.recv()
    assert closed.value.rcvd.code == 1008


async def test_ws_supervisor_pushes_a_new_snapshot_when_the_queue_changes(hub, rds, lang, visitors, sockets):
    """A supervisor socket gets a queue frame at once and another when a visitor queues."""
    await _busy_agent(hub, rds, lang, sockets)
    first = await visitors(lang, "Ada")
    await first.wait_type("assigned")
    user = await create_agent(rds, f"s-{lang}", [lang], role="supervisor")
    feed = await sockets.cookie(hub, await asyncio.to_thread(login_cookie, hub, user), "/ws/supervisor")
    start = await feed.wait_type("queue")
    assert lang not in start["waiting_by_lang"]
    waiting = await visitors(lang, "Bob")
    await waiting.wait_type("queued")
    changed = await feed.wait_for(lambda f: f.get("type") == "queue" and f["waiting_by_lang"].get(lang) == 1)
    assert changed["waiting"] >= 1 and changed["waiting_by_plan"]["free"] >= 1


async def test_open_tickets_link_to_their_transcript(hub, rds, lang, context, visitors, sockets):
    """A chat closed unresolved shows up in the open tickets table, linked to /api/tickets/{ref}."""
    agent = await _busy_agent(hub, rds, lang, sockets)
    kim = await visitors(lang, "Kim", email="kim@example.org")
    await kim.wait_type("assigned")
    await kim.say("Please mail me the answer")
    assigned = await agent.wait_type("assigned")
    await agent.send(type="close", chat_id=assigned["chat_id"], resolution="unresolved")
    ref = (await kim.wait_type("closed"))["ref"]

    supervisor = await create_agent(rds, f"s-{lang}", [lang], role="supervisor")
    page = await context.new_page()
    await browser_login(page, hub.base_url, supervisor)
    await desk_ready(page)
    link = page.locator(f"#open-tickets a[href='/api/tickets/{ref}']")
    await expect(link).to_have_text(ref)
    await expect(page.locator("#tickets-today tr[data-trigger='unresolved'] td")).not_to_have_text("0")
    await link.click()
    await page.wait_for_url(f"**/api/tickets/{ref}")
    await expect(page.locator("body")).to_contain_text("Please mail me the answer")
