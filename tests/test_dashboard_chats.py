"""The agent dashboard in real Chromium, with visitors driven by websockets clients."""

from __future__ import annotations

import asyncio
import re

from playwright.async_api import expect

from agents.canned import save_reply
from chat import keys
from chat.chatlog import read_log
from chat.chats import load_chat
from chat.queue import Queue
from tests.support.browser import agent_status, chat_item, open_desk, screenshot, TIMEOUT
from tests.support.clients import connect, create_agent, login_cookie
from tests.support.waiting import eventually



async def _two_chats(hub, rds, lang, context, visitors):
    user = await create_agent(rds, f"a-{lang}", [lang], name="Sam")
    page = await open_desk(context, hub.base_url, rds, user)
    ada = await visitors(lang, "Ada", topic="billing", email="ada@example.org", page="https://example.org/pricing")
    await ada.wait_type("assigned")
    bob = await visitors(lang, "Bob", topic="technical")
    await bob.wait_type("assigned")
    await expect(chat_item(page, "Ada")).to_be_visible()
    await expect(chat_item(page, "Bob")).to_be_visible()
    return page, ada, bob


async def _reply(page, text: str) -> None:
    await page.locator("#composer-text").fill(text)
    await page.locator("#composer-text").press("Enter")


async def test_agent_handles_two_chats_at_once(hub, rds, lang, context, visitors):
    """Two visitors at once: each message lands in its own chat, replies reach the right visitor."""
    page, ada, bob = await _two_chats(hub, rds, lang, context, visitors)
    await chat_item(page, "Ada").click()
    await ada.say("Where is my invoice for March?")
    await bob.say("I cannot sign in on my phone")
    messages = page.locator("#messages")
    await expect(messages).to_contain_text("Where is my invoice for March?")
    await expect(chat_item(page, "Bob").locator(".unread")).to_have_text("1")
    await expect(messages).not_to_contain_text("I cannot sign in")
    assert (await page.title()).startswith("(1)")

    await _reply(page, "Let me look that up, Ada.")
    to_ada = await ada.wait_for(lambda f: f.get("type") == "message" and f.get("from") == "agent")
    assert to_ada["text"] == "Let me look that up, Ada."

    await page.keyboard.press("Alt+ArrowDown")
    await expect(page.locator("#conv-title")).to_have_text("Bob")
    await expect(messages).to_contain_text("I cannot sign in on my phone")
    await expect(chat_item(page, "Bob").locator(".unread")).to_have_count(0)
    await _reply(page, "Which phone do you use, Bob?")
    to_bob = await bob.wait_for(lambda f: f.get("type") == "message" and f.get("from") == "agent")
    assert to_bob["text"] == "Which phone do you use, Bob?"

    ada_log = [m["text"] for m in await read_log(rds, ada.chat_id)]
    bob_log = [m["text"] for m in await read_log(rds, bob.chat_id)]
    assert ada_log == ["Where is my invoice for March?", "Let me look that up, Ada."]
    assert bob_log == ["I cannot sign in on my phone", "Which phone do you use, Bob?"]
    await chat_item(page, "Ada").click()
    await expect(page.locator("#details")).to_contain_text("ada@example.org")
    await expect(page.locator("#details")).to_contain_text("https://example.org/pricing")
    await screenshot(page, "agent-two-chats")
    assert page.js_errors == []


async def test_reload_restores_both_chats(hub, rds, lang, context, visitors):
    """After a page reload the welcome frame brings back both chats with their whole history, once."""
    page, ada, bob = await _two_chats(hub, rds, lang, context, visitors)
    await ada.say("First from Ada")
    await bob.say("First from Bob")
    await chat_item(page, "Ada").click()
    await _reply(page, "Reply to Ada")
    await ada.wait_for(lambda f: f.get("type") == "message" and f.get("from") == "agent")

    await page.reload()
    await page.locator("body[data-ready='1']").wait_for()
    await expect(page.locator("#chats li.chat-item")).to_have_count(2)
    await chat_item(page, "Ada").click()
    await expect(page.locator("#messages .bubble")).to_have_text(["First from Ada", "Reply to Ada"])
    await chat_item(page, "Bob").click()
    await expect(page.locator("#messages .bubble")).to_have_text(["First from Bob"])
    await bob.say("Still there?")
    await expect(page.locator("#messages .bubble")).to_have_text(["First from Bob", "Still there?"])


async def test_transfer_to_another_agent_moves_the_history(hub, rds, lang, browser, context, visitors):
    """Transferring a chat to a named agent moves it, history and all, to that agent's desk."""
    first = await create_agent(rds, f"a1-{lang}", [lang], name="Sam")
    page1 = await open_desk(context, hub.base_url, rds, first)
    cleo = await visitors(lang, "Cleo", topic="security")
    await cleo.wait_type("assigned")
    await cleo.say("My two-factor device is lost")
    await expect(chat_item(page1, "Cleo")).to_be_visible()
    await chat_item(page1, "Cleo").click()
    await _reply(page1, "I will pass you to our security specialist.")
    await cleo.wait_for(lambda f: f.get("type") == "message" and f.get("from") == "agent")

    second = await create_agent(rds, f"a2-{lang}", [lang], name="Robin")
    other = await browser.new_context(viewport={"width": 1280, "height": 800})
    other.set_default_timeout(TIMEOUT * 1000)
    try:
        page2 = await open_desk(other, hub.base_url, rds, second)
        await page1.get_by_role("button", name="Transfer…").click()
        await page1.locator("#transfer-to").select_option(second)
        await page1.locator("#transfer-panel").get_by_role("button", name="Transfer", exact=True).click()
        await expect(chat_item(page1, "Cleo")).to_have_count(0)
        await expect(chat_item(page2, "Cleo")).to_be_visible()
        await chat_item(page2, "Cleo").click()
        await expect(page2.locator("#messages .bubble")).to_have_text(
            ["My two-factor device is lost", "I will pass you to our security specialist."]
        )
        assert (await Queue(rds).route(cleo.chat_id))["agent"] == second
        await cleo.wait_for(lambda f: f.get("type") == "assigned" and f["agent"]["name"] == "Robin")
        await cleo.say("Thanks, Robin")
        await expect(page2.locator("#messages .bubble").last).to_have_text("Thanks, Robin")
        await screenshot(page2, "agent-after-transfer")
    finally:
        await other.close()


async def test_a_refused_transfer_does_not_hide_the_visitor_leaving_later(hub, rds, lang, context, visitors):
    """After a refused transfer (target away) the visitor leaving shows as such, not as a transfer."""
    user = await create_agent(rds, f"a1-{lang}", [lang], name="Sam")
    page = await open_desk(context, hub.base_url, rds, user)
    away = await create_agent(rds, f"a2-{lang}", [lang], name="Robin")
    robin = await connect(hub, "/ws/agent", headers={"Cookie": await asyncio.to_thread(login_cookie, hub, away)})
    try:
        await robin.wait_type("welcome")  # Robin is known to routing, and away
        erin = await visitors(lang, "Erin")
        await erin.wait_type("assigned")
        await chat_item(page, "Erin").click()
        await page.get_by_role("button", name="Transfer…").click()
        await page.locator("#transfer-to").select_option(away)
        await page.locator("#transfer-panel").get_by_role("button", name="Transfer", exact=True).click()
        await expect(page.locator("#toasts")).to_contain_text("transfer refused")
        await expect(chat_item(page, "Erin")).to_be_visible()
        await erin.send(type="leave")
        await expect(chat_item(page, "Erin")).to_have_class(re.compile(r"\bis-closed\b"))
        await expect(page.locator("#closed-banner")).to_have_text("The visitor left the chat.")
        await expect(page.locator("#toasts")).not_to_contain_text("transferred")
    finally:
        await robin.close()
    assert page.js_errors == []


async def test_close_resolved_ends_the_chat_for_the_visitor(hub, rds, lang, context, visitors):
    """Closing as resolved tells the visitor, closes the chat in Redis and leaves the list."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    page = await open_desk(context, hub.base_url, rds, user)
    dana = await visitors(lang, "Dana")
    await dana.wait_type("assigned")
    await dana.say("Thanks, that fixed it")
    await chat_item(page, "Dana").click()
    await page.get_by_role("button", name="Close: resolved").click()
    closed = await dana.wait_type("closed")
    assert closed["reason"] == "resolved"
    await expect(chat_item(page, "Dana")).to_have_count(0)
    assert (await load_chat(rds, dana.chat_id))["status"] == "closed"
    assert not await rds.sismember(keys.agent_chats(user), dana.chat_id)


async def test_hostile_html_from_a_visitor_is_shown_as_text(hub, rds, lang, context, visitors):
    """Markup in a visitor's name, page and message is rendered literally and runs nothing."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    page = await open_desk(context, hub.base_url, rds, user)
    name = '<img src=x onerror="window.__pwned=1">Eve'
    text = '<script>window.__pwned=2</script><b>bold</b><img src=x onerror="window.__pwned=3">'
    eve = await visitors(lang, name, page="javascript:window.__pwned=4")
    await eve.wait_type("assigned")
    await eve.say(text)
    item = page.locator("#chats li.chat-item").first
    await item.click()
    await expect(page.locator("#messages .bubble")).to_have_text([text])
    await expect(item.locator(".chat-name")).to_have_text(name)
    await expect(page.locator("#conv-title")).to_have_text(name)
    await expect(page.locator("#details")).to_contain_text("javascript:window.__pwned=4")
    for area in ("#chats", "#messages", "#details", "#conv-title"):
        assert await page.locator(f"{area} img, {area} script, {area} b, {area} a").count() == 0
    assert await page.evaluate("window.__pwned") is None
    await screenshot(page, "agent-hostile-text")


async def test_read_receipt_turns_sent_into_seen(hub, rds, lang, context, visitors):
    """The agent's message shows "sent", then "seen" once the visitor reports reading it."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    page = await open_desk(context, hub.base_url, rds, user)
    finn = await visitors(lang, "Finn")
    await finn.wait_type("assigned")
    await chat_item(page, "Finn").click()
    await _reply(page, "Hello Finn")
    mine = page.locator("#messages li.msg-agent .msg-state")
    await expect(mine).to_have_text("sent")
    reply = await finn.wait_for(lambda f: f.get("type") == "message" and f.get("from") == "agent")
    await finn.send(type="read", seq=reply["seq"])
    await expect(mine).to_have_text("seen")


async def test_visitor_typing_shows_in_the_open_chat(hub, rds, lang, context, visitors):
    """The visitor's typing frame shows the typing line; the agent's typing reaches the visitor."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    page = await open_desk(context, hub.base_url, rds, user)
    gus = await visitors(lang, "Gus")
    await gus.wait_type("assigned")
    await chat_item(page, "Gus").click()
    await gus.send(type="typing", active=True)
    await expect(page.locator("#typing")).to_be_visible()
    await gus.send(type="typing", active=False)
    await expect(page.locator("#typing")).to_be_hidden()
    await page.locator("#composer-text").press_sequentially("Hel")
    typing = await gus.wait_type("typing")
    assert typing["active"] is True


async def test_canned_reply_is_inserted_with_slash(hub, rds, lang, context, visitors):
    """Typing / and a shortcut offers the team's canned reply; Enter inserts it, Enter sends it."""
    shortcut = f"greet{lang}"
    await save_reply(rds, shortcut, "Hello! How can I help you today?")
    user = await create_agent(rds, f"a-{lang}", [lang])
    page = await open_desk(context, hub.base_url, rds, user)
    hana = await visitors(lang, "Hana")
    await hana.wait_type("assigned")
    await chat_item(page, "Hana").click()
    composer = page.locator("#composer-text")
    await composer.press_sequentially("/" + shortcut[:8])
    menu = page.locator("#canned-menu")
    await expect(menu).to_be_visible()
    await expect(menu.locator("li.selected")).to_contain_text("/" + shortcut)
    await screenshot(page, "agent-canned-menu")
    await composer.press("Enter")
    await expect(composer).to_have_value("Hello! How can I help you today?")
    await composer.press("Enter")
    got = await hana.wait_for(lambda f: f.get("type") == "message" and f.get("from") == "agent")
    assert got["text"] == "Hello! How can I help you today?"


async def test_status_toggle_sets_the_agent_away(hub, rds, lang, context):
    """The status button switches routing between online and away."""

    user = await create_agent(rds, f"a-{lang}", [lang])
    page = await open_desk(context, hub.base_url, rds, user)
    await page.locator("#status-toggle").click()
    await agent_status(rds, user, "away")
    await expect(page.locator("#status-toggle")).to_contain_text("Away")
    await page.locator("#status-toggle").click()
    await agent_status(rds, user, "online")


async def test_messages_written_while_disconnected_arrive_after_reconnect(hub, rds, lang, context, visitors):
    """A dropped socket reconnects by itself and shows what the visitor wrote meanwhile."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    page = await open_desk(context, hub.base_url, rds, user)
    ivy = await visitors(lang, "Ivy")
    await ivy.wait_type("assigned")
    await chat_item(page, "Ivy").click()
    await ivy.say("Before the drop")
    await expect(page.locator("#messages .bubble")).to_have_text(["Before the drop"])
    await page.evaluate("window.lcDesk.dropConnection()")
    await ivy.say("During the drop")
    await eventually(lambda: page.evaluate("window.lcDesk.welcomed"), TIMEOUT, message="the dashboard to reconnect")
    await expect(page.locator("#messages .bubble")).to_have_text(["Before the drop", "During the drop"])


async def test_close_unresolved_turns_the_chat_into_a_ticket(hub, rds, lang, context, visitors):
    """Closing as unresolved gives the visitor a ticket reference and closes the chat."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    page = await open_desk(context, hub.base_url, rds, user)
    jo = await visitors(lang, "Jo", email="jo@example.org")
    await jo.wait_type("assigned")
    await jo.say("My export keeps failing with error 52")
    await chat_item(page, "Jo").click()
    await page.get_by_role("button", name="Close: unresolved").click()
    closed = await jo.wait_type("closed")
    assert closed["reason"] == "ticket" and closed["ref"]
    await expect(page.locator(".toast", has_text=closed["ref"])).to_be_visible()
    await expect(chat_item(page, "Jo")).to_have_count(0)


async def test_turn_into_ticket_opens_the_new_ticket_in_the_tickets_view(hub, rds, lang, context, visitors):
    """"Close: unresolved" on a chat opens the Tickets view on the new ticket, with its reference and the chat in it."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    page = await open_desk(context, hub.base_url, rds, user)
    kai = await visitors(lang, "Kai", email="kai@example.org")
    await kai.wait_type("assigned")
    await kai.say("The invoice PDF comes out blank")
    await chat_item(page, "Kai").click()
    await page.get_by_role("button", name="Close: unresolved").click()
    ref = (await kai.wait_type("closed"))["ref"]
    await expect(page.locator("#tickets-view")).to_be_visible()
    await expect(page.locator("#ticket-title")).to_contain_text(ref)
    await expect(page.locator("#ticket-thread")).to_contain_text("The invoice PDF comes out blank")
    await page.locator("#ticket-q").fill(ref)
    await expect(page.locator(f"#ticket-list li[data-ref='{ref}']")).to_be_visible()
    assert page.js_errors == []
