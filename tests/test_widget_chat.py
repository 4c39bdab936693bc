"""The widget in real Chromium: a visitor's chat with an agent, from the launcher to the rating."""

from __future__ import annotations

import json
import time

import websockets
from playwright.async_api import expect

from chat import keys
from chat.identity import sign
from tests.support.browser import host_page, TIMEOUT, Widget
from tests.support.servers import TEST_SITE_SECRET
from tests.support.waiting import eventually



async def open_host(page, host_site, hub, lang, name="index", **kwargs) -> Widget:
    url = host_site.add(f"/{lang}/{name}.html", host_page(hub.base_url, lang, **kwargs))
    await page.goto(url)
    widget = Widget(page)
    await expect(widget.launcher).to_be_visible()
    return widget


async def visitor_in_chat(page, host_site, hub, make_agent, lang, question="My mailbox does not sync"):
    """A visitor who filled in the pre-chat form and was given to agent Sam."""
    agent = await make_agent(lang)
    widget = await open_host(page, host_site, hub, lang, next_href=f"/{lang}/pricing.html")
    await widget.start_chat("Ada", question)
    chat_id = await agent.assigned()
    await expect(widget.status).to_have_text("You are chatting with Sam.")
    return widget, agent, chat_id


async def test_visitor_and_agent_exchange_messages_in_order(page, host_site, hub, make_agent, lang):
    """Pre-chat form, assignment, then messages both ways appear in the order they were sent."""
    agent = await make_agent(lang)
    widget = await open_host(page, host_site, hub, lang)
    await widget.screenshot("01-launcher")
    await widget.launcher.click()
    await expect(widget.form).to_be_visible()
    await expect(widget.field("Name")).to_be_focused()
    await widget.screenshot("02-prechat-form")
    await widget.field("Name").fill("Ada")
    await widget.field("Email (optional)").fill("ada@example.org")
    await widget.form.locator("select").first.select_option("security")
    await widget.field("Your question").fill("Two-factor codes are refused")
    await widget.form.get_by_role("button", name="Start chat").click()

    assigned = await agent.wait_for(lambda f: f.get("type") == "assigned")
    chat_id = assigned["chat_id"]
    assert assigned["visitor"]["name"] == "Ada"
    assert assigned["visitor"]["email"] == "ada@example.org"
    assert assigned["visitor"]["lang"] == lang and assigned["visitor"]["topic"] == "security"
    await expect(widget.status).to_have_text("You are chatting with Sam.")
    await expect(widget.log).to_contain_text("Sam joined the chat.")

    await agent.send(type="message", chat_id=chat_id, text="Hello Ada, which app do you use?", client_id="a1")
    await widget.say("The Android app")
    await agent.got("The Android app")
    await agent.send(type="message", chat_id=chat_id, text="Please check the phone's clock.", client_id="a2")
    await widget.say("That was it, thanks!")
    await agent.got("That was it, thanks!")

    expected = ["Two-factor codes are refused", "Hello Ada, which app do you use?", "The Android app",
                "Please check the phone's clock.", "That was it, thanks!"]
    await expect(widget.messages.locator(".tx")).to_have_text(expected)
    await expect(widget.messages.locator(".state")).to_have_text(["Sent"] * 3)
    seqs = await widget.messages.evaluate_all("els => els.map(e => +e.dataset.seq)")
    assert seqs == [1, 2, 3, 4, 5]
    assert agent.view(chat_id) == dict(enumerate(expected, start=1))
    await widget.screenshot("03-chat-active")


async def test_reload_restores_the_conversation(page, host_site, hub, make_agent, lang):
    """After a page reload the panel reopens with the same messages, once each, and the chat goes on."""
    widget, agent, chat_id = await visitor_in_chat(page, host_site, hub, make_agent, lang)
    await agent.send(type="message", chat_id=chat_id, text="Which device?", client_id="a1")
    await widget.say("A laptop")
    await expect(widget.messages.locator(".state")).to_have_text(["Sent", "Sent"])
    before = await widget.texts()

    await page.reload()
    await expect(widget.panel).to_be_visible()
    await expect(widget.messages.locator(".tx")).to_have_text(before)
    await expect(widget.status).to_have_text("You are chatting with Sam.")
    await agent.send(type="message", chat_id=chat_id, text="Thanks, looking into it.", client_id="a2")
    await expect(widget.messages.locator(".tx")).to_have_text(before + ["Thanks, looking into it."])
    assert await widget.log.locator("text=Sam joined the chat.").count() == 1


async def test_chat_follows_the_visitor_to_another_page(page, host_site, hub, make_agent, lang):
    """Navigating within the site keeps the chat: history shown, new messages still flow both ways."""
    widget, agent, chat_id = await visitor_in_chat(page, host_site, hub, make_agent, lang)
    host_site.add(f"/{lang}/pricing.html", host_page(hub.base_url, lang, title="Pricing"))
    await agent.send(type="message", chat_id=chat_id, text="Have a look at our plans.", client_id="a1")
    await expect(widget.messages).to_have_count(2)
    await page.locator("#next").click()
    await expect(page).to_have_title("Pricing")
    await expect(widget.messages.locator(".tx")).to_have_text(["My mailbox does not sync", "Have a look at our plans."])
    await widget.say("Plus looks good")
    await agent.got("Plus looks good")
    await expect(widget.messages.locator(".state").last).to_have_text("Sent")


async def test_agent_html_is_shown_as_text_and_never_runs(page, host_site, hub, make_agent, lang):
    """Markup from the agent is displayed literally; no element is created and no script runs."""
    widget, agent, chat_id = await visitor_in_chat(page, host_site, hub, make_agent, lang)
    evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold</b>'
    await agent.send(type="message", chat_id=chat_id, text=evil, client_id="evil")
    await expect(widget.messages.last.locator(".tx")).to_have_text(evil)
    shadow_imgs = await page.evaluate("document.querySelector('livechat-widget').shadowRoot.querySelectorAll('img, script, b').length")
    assert shadow_imgs == 0
    assert await page.evaluate("window.__pwned") is None
    await widget.screenshot("04-hostile-html-as-text")


async def test_typing_shows_both_ways(page, host_site, hub, make_agent, lang):
    """The agent's typing frame shows an indicator; the visitor's typing reaches the agent."""
    widget, agent, chat_id = await visitor_in_chat(page, host_site, hub, make_agent, lang)
    await agent.send(type="typing", chat_id=chat_id, active=True)
    await expect(widget.typing).to_have_text("Sam is typing…")
    await agent.send(type="typing", chat_id=chat_id, active=False)
    await expect(widget.typing).to_be_hidden()
    await widget.composer.press_sequentially("Hel")
    frame = await agent.wait_for(lambda f: f.get("type") == "typing")
    assert frame == {"type": "typing", "chat_id": chat_id, "active": True}


async def test_queue_position_is_shown_while_waiting(page, host_site, hub, make_agent, lang):
    """With the only agent busy, the visitor sees their place in line."""
    agent = await make_agent(lang, max_chats=1)
    async with websockets.connect(hub.ws_url + "/ws/visitor") as first:
        await first.send(json.dumps({"type": "hello", "name": "First", "lang": lang}))
        await agent.assigned()
        widget = await open_host(page, host_site, hub, lang)
        await widget.start_chat("Ada", "Is my domain set up right?")
        await expect(widget.status).to_contain_text("You are number 1 in line.")
        await widget.screenshot("05-queued")


async def test_closed_chat_offers_a_rating(page, host_site, hub, make_agent, lang, rds):
    """When the agent closes the chat the visitor sees it ended, rates 1-5 with a comment, and the hub keeps it."""
    widget, agent, chat_id = await visitor_in_chat(page, host_site, hub, make_agent, lang)
    await agent.send(type="close", chat_id=chat_id, resolution="resolved")
    await expect(widget.closed).to_have_text("This chat has ended.")
    await expect(widget.composer).to_be_hidden()
    await expect(widget.rating).to_be_visible()
    await widget.screenshot("06-closed-rating")
    await widget.rating.locator("label", has_text="4").click()
    await widget.rating.get_by_label("Comment (optional)").fill("Quick and kind")
    await widget.rating.get_by_role("button", name="Send rating").click()
    await expect(widget.page.locator("livechat-widget .thanks")).to_have_text("Thank you for your feedback.")
    assert await eventually(lambda: rds.hget(keys.chat(chat_id), "rating"), TIMEOUT, message="rating stored") == b"4"
    assert await rds.hget(keys.chat(chat_id), "rating_comment") == b"Quick and kind"


async def test_french_strings_with_data_lang(page, host_site, hub, lang):
    """data-lang="fr" switches every label to French."""
    widget = await open_host(page, host_site, hub, lang, attrs='data-lang="fr"')
    await expect(widget.launcher).to_have_accessible_name("Discuter avec nous")
    await widget.launcher.click()
    await expect(widget.form.get_by_role("button", name="Commencer")).to_be_visible()
    await expect(widget.form.get_by_label("E-mail (facultatif)")).to_be_visible()


async def test_verified_visitor_skips_name_and_email(page, host_site, hub, make_agent, lang):
    """With an identity token the form asks neither name nor email; the agent sees a verified visitor."""
    agent = await make_agent(lang)
    token = sign(TEST_SITE_SECRET, {"sub": "u-42", "name": "Grace", "email": "grace@example.org",
                                    "plan": "professional", "exp": int(time.time()) + 3600})
    widget = await open_host(page, host_site, hub, lang, attrs=f'data-identity="{token}"')
    await widget.launcher.click()
    await expect(widget.form).to_contain_text("Signed in as Grace.")
    await expect(widget.form.get_by_label("Name", exact=True)).to_be_hidden()
    await expect(widget.form.get_by_label("Email (optional)")).to_be_hidden()
    await widget.form.get_by_role("button", name="Start chat").click()
    assigned = await agent.wait_for(lambda f: f.get("type") == "assigned")
    assert assigned["visitor"]["verified"] is True
    assert assigned["visitor"]["plan"] == "professional"
    assert assigned["visitor"]["name"] == "Grace"


async def test_keyboard_only_visitor(page, host_site, hub, make_agent, lang):
    """Tab to the launcher, fill the form, chat and close the panel without touching the mouse."""
    agent = await make_agent(lang)
    widget = await open_host(page, host_site, hub, lang)
    focused = "document.activeElement?.shadowRoot?.activeElement?.className || document.activeElement?.id"
    for _ in range(10):
        await page.keyboard.press("Tab")
        if await page.evaluate(focused) == "launch":
            break
    assert await page.evaluate(focused) == "launch"
    await page.keyboard.press("Enter")
    await expect(widget.field("Name")).to_be_focused()
    await page.keyboard.type("Kim")
    await page.keyboard.press("Tab")  # email
    await page.keyboard.press("Tab")  # topic
    await page.keyboard.press("ArrowDown")  # technical
    await page.keyboard.press("Tab")  # question
    await page.keyboard.type("Keyboard only here")
    await page.keyboard.press("Tab")  # start
    await page.keyboard.press("Enter")
    chat_id = await agent.assigned()
    await expect(widget.composer).to_be_focused()
    await page.keyboard.type("Hello from the keyboard")
    await page.keyboard.press("Enter")
    await agent.got("Hello from the keyboard")
    await agent.send(type="message", chat_id=chat_id, text="Hello Kim", client_id="a1")
    await expect(widget.messages.last.locator(".tx")).to_have_text("Hello Kim")
    await widget.screenshot("07-keyboard")
    await page.keyboard.press("Escape")
    await expect(widget.panel).to_be_hidden()
    assert await page.evaluate(focused) == "launch"


async def test_identity_from_window_livechat_identity(page, host_site, hub, lang):
    """A token set by the site's own script in window.LivechatIdentity is used like data-identity."""
    token = sign(TEST_SITE_SECRET, {"sub": "u-7", "name": "Linus", "plan": "plus", "exp": int(time.time()) + 3600})
    host_site.add(f"/{lang}/identity.js", f'window.LivechatIdentity = "{token}";', "text/javascript")
    widget = await open_host(page, host_site, hub, lang, head=f'<script src="/{lang}/identity.js"></script>')
    await widget.launcher.click()
    await expect(widget.form).to_contain_text("Signed in as Linus.")
    await expect(widget.form.get_by_label("Name", exact=True)).to_be_hidden()
    await expect(widget.form.get_by_label("Email (optional)")).to_be_visible()
