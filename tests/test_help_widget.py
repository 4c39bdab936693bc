"""The help centre in the widget, in real Chromium: suggestions while the question is typed,
the article in the panel, "This answered my question" and "I still need help", counted in
/metrics; French articles for a French widget; an article's markup stays inert."""

from __future__ import annotations

import asyncio
import re
import urllib.request

from playwright.async_api import expect
from tests.support.browser import host_page, Widget
from tests.support.waiting import eventually




def metric(hub, name: str) -> float:
    """One sample of the hub's /metrics (loopback may read it)."""
    with urllib.request.urlopen(hub.base_url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))


async def reads(hub, name: str, value: float) -> bool:
    return await asyncio.to_thread(metric, hub, name) == value


async def open_widget(page, host_site, help_hub, lang, attrs: str = "") -> Widget:
    url = host_site.add(f"/{lang}/help.html", host_page(help_hub.base_url, lang, attrs=attrs))
    await page.goto(url)
    widget = Widget(page)
    await widget.launcher.click()
    await expect(widget.form).to_be_visible()
    return widget


def suggestions(page):
    return page.locator("livechat-widget .sugg li a")


def article(page):
    return page.locator("livechat-widget section.art")


async def test_typing_a_question_suggests_the_account_recovery_article(page, host_site, help_hub, lang):
    """"I forgot my password" in the pre-chat form lists the account-recovery article first, at most three."""
    widget = await open_widget(page, host_site, help_hub, lang)
    await widget.field("Your question").press_sequentially("I forgot my password")
    await expect(suggestions(page).first).to_have_text("Forgot your password? Recover your account")
    assert await suggestions(page).count() <= 3
    await widget.screenshot("help-01-suggestions")


async def test_the_help_code_is_loaded_only_when_the_form_opens(page, host_site, help_hub, lang):
    """Until the visitor opens the panel the page never asks the hub for widget/help.js."""
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    url = host_site.add(f"/{lang}/lazy.html", host_page(help_hub.base_url, lang))
    await page.goto(url)
    widget = Widget(page)
    await expect(widget.launcher).to_be_visible()
    await page.wait_for_load_state("networkidle")
    assert not [u for u in requested if "/widget/help.js" in u]
    await widget.launcher.click()
    await expect(page.locator("livechat-widget .sugg")).to_be_attached()
    await page.wait_for_load_state("networkidle")
    assert [u for u in requested if u.endswith("/widget/help.js")]


async def test_opening_a_suggestion_shows_the_article_in_the_panel_and_counts_a_view(page, context, host_site, help_hub, lang):
    """The article opens inside the widget (same page, no new tab) and help_viewed goes up by one."""
    viewed = metric(help_hub, "livechat_help_viewed_total")
    widget = await open_widget(page, host_site, help_hub, lang)
    await widget.field("Your question").press_sequentially("I forgot my password")
    await suggestions(page).first.click()
    await expect(article(page).locator("h2")).to_have_text("Forgot your password? Recover your account")
    await expect(article(page)).to_contain_text("Reset your password with your recovery email")
    assert page.url.endswith("/help.html") and len(context.pages) == 1
    await widget.screenshot("help-02-article")
    await eventually(lambda: reads(help_hub, "livechat_help_viewed_total", viewed + 1), message="a view counted")


async def test_this_answered_my_question_counts_a_deflection_and_starts_no_chat(page, host_site, help_hub, lang):
    """"This answered my question" adds one to help_solved, closes the article and opens no socket."""
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    solved = metric(help_hub, "livechat_help_solved_total")
    widget = await open_widget(page, host_site, help_hub, lang)
    await widget.field("Your question").press_sequentially("my card was declined")
    await suggestions(page).first.click()
    await article(page).get_by_role("button", name="This answered my question").click()
    await expect(article(page)).to_be_hidden()
    await expect(widget.form).to_contain_text("Glad it helped!")
    await expect(widget.field("Your question")).to_have_value("")
    await eventually(lambda: reads(help_hub, "livechat_help_solved_total", solved + 1), message="a deflection counted")
    assert sockets == []


async def test_i_still_need_help_starts_the_chat_with_the_question_kept(page, host_site, help_hub, make_agent, lang):
    """"I still need help" closes the article and starts the chat; the agent gets the question as typed."""
    agent = await make_agent(lang, on=help_hub)
    widget = await open_widget(page, host_site, help_hub, lang)
    await widget.field("Name").fill("Ada")
    await widget.field("Your question").press_sequentially("Two-factor codes are refused")
    await suggestions(page).first.click()
    await article(page).get_by_role("button", name="I still need help").click()
    chat_id = await agent.assigned()
    # the question arrives live, or in the history of the assignment when it was stored first
    await agent.until(lambda _: "Two-factor codes are refused" in agent.view(chat_id).values())
    await expect(widget.messages.locator(".tx")).to_have_text(["Two-factor codes are refused"])
    await expect(article(page)).to_be_hidden()


async def test_a_french_widget_suggests_french_articles(page, host_site, help_hub, lang):
    """With data-lang="fr" the suggestions and the article are the French ones."""
    widget = await open_widget(page, host_site, help_hub, lang, attrs='data-lang="fr"')
    await widget.form.get_by_label("Votre question", exact=True).press_sequentially("j'ai oublié mon mot de passe")
    await expect(suggestions(page).first).to_have_text("Mot de passe oublié ? Récupérer votre compte")
    await suggestions(page).first.click()
    await expect(article(page)).to_contain_text("Avec votre e-mail de récupération")
    await expect(article(page).get_by_role("button", name="Cela a répondu à ma question")).to_be_visible()


async def test_markup_in_an_article_is_inert_in_the_widget(page, host_site, help_hub, lang):
    """The hostile article's <script> and <img onerror> show as text in the panel and never run on the host page."""
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    widget = await open_widget(page, host_site, help_hub, lang)
    await widget.field("Your question").press_sequentially("hostile article")
    await suggestions(page).first.click()
    await expect(article(page)).to_contain_text('<script>window.__pwned = 1; alert("pwned")</script>')
    await expect(article(page)).to_contain_text('<img src="x" onerror="window.__pwned = 2">')
    assert await article(page).locator("script, img").count() == 0
    assert await article(page).locator("a[href^='javascript']").count() == 0
    assert await page.evaluate("window.__pwned") is None
    assert dialogs == [] and page.js_errors == []
