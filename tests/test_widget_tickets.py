"""When nobody can answer live, the widget turns the visitor's words into an email ticket."""

from __future__ import annotations

import json
import re

import websockets
from playwright.async_api import expect

from chat.chats import load_chat
from tests.support.browser import host_page, Widget
from tests.support.clients import agent
from tests.support.servers import hub_env, HubProcess, TEST_CONFIG

TICKET_REF = re.compile(r"^LC-[0-9A-Z]{4,}$")


async def stored_chat_id(page) -> str:
    """The chat id the widget keeps in this tab's sessionStorage."""
    return await page.evaluate("Object.values(sessionStorage).map(v => JSON.parse(v).id).find(Boolean)")


async def test_offline_message_form_ends_in_a_ticket_reference(page, host_site, hub, rds, lang):
    """No agent for the language: the visitor writes, gives an email, sends, and sees the ticket reference."""
    url = host_site.add(f"/{lang}/index.html", host_page(hub.base_url, lang))
    await page.goto(url)
    widget = Widget(page)
    await widget.start_chat("Ada", "I cannot log in since yesterday")
    await expect(widget.offline).to_be_visible()
    await expect(widget.offline).to_contain_text("Nobody can answer right now.")
    await widget.say("My username is ada42, the error says 'session expired'")
    await expect(widget.messages.locator(".state")).to_have_text(["Sent", "Sent"])
    await widget.screenshot("11-offline-form")
    await widget.offline.get_by_role("button", name="Send to support").click()
    email = widget.offline.get_by_label("Your email for our reply")
    await expect(email).to_be_focused()  # refused without an email, which is asked for
    await email.fill("ada@example.org")
    await widget.offline.get_by_role("button", name="Send to support").click()
    await expect(widget.ticket).to_have_text(TICKET_REF)
    await expect(widget.closed).to_be_visible()
    await expect(widget.rating).to_be_visible()
    await widget.screenshot("12-ticket-reference")
    chat = await load_chat(rds, await stored_chat_id(page))
    assert chat["ticket"] == await widget.ticket.inner_text()
    assert chat["email"] == "ada@example.org"


async def test_long_wait_offers_an_email_answer_instead(page, host_site, own_redis, data_root, lang):
    """Past the plan's max_wait the visitor is offered "keep waiting" or "email me"; email ends in a ticket."""
    redis_url, rds = own_redis
    config = data_root / f"{lang}.toml"
    config.write_text(TEST_CONFIG.replace("max_wait = 600", "max_wait = 1", 1))
    assert "max_wait = 1\n" in config.read_text()
    data_dir = data_root / f"hub-{lang}"
    hub = HubProcess(hub_env(redis_url, data_dir, config), data_dir).start()
    sam = None
    try:
        sam, _ = await agent(hub, rds, f"a-{lang}", [lang], name="Sam", max_chats=1)
        async with websockets.connect(hub.ws_url + "/ws/visitor") as first:
            await first.send(json.dumps({"type": "hello", "name": "First", "lang": lang}))
            await sam.assigned()
            url = host_site.add(f"/{lang}/index.html", host_page(hub.base_url, lang))
            await page.goto(url)
            widget = Widget(page)
            await widget.start_chat("Ada", "Still waiting for an answer")
            ask = page.locator("livechat-widget .box.wait")
            await expect(ask).to_be_visible()
            await expect(ask).to_contain_text("Keep waiting, or get our answer by email?")
            await widget.screenshot("13-wait-or-ticket")
            await ask.get_by_role("button", name="Email me instead").click()
            await ask.get_by_label("Your email for our reply").fill("ada@example.org")
            await ask.get_by_role("button", name="Email me instead").click()
            await expect(widget.ticket).to_have_text(TICKET_REF)
            chat = await load_chat(rds, await stored_chat_id(page))
            assert chat["ticket"] == await widget.ticket.inner_text()
            assert chat["email"] == "ada@example.org"
    finally:
        if sam:
            await sam.close()
        hub.terminate()
