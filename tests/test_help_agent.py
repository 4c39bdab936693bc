"""Agents link articles: "/help words" in the dashboard's composer searches the help centre and
inserts the article's title and link; the visitor's widget shows it as a card that opens the
article in the panel. Real Chromium for both sides."""

from __future__ import annotations

from playwright.async_api import expect
from tests.support.browser import chat_item, host_page, open_desk, TIMEOUT, Widget
from tests.support.clients import create_agent




async def test_an_agent_links_an_article_and_the_visitor_opens_it_in_the_panel(browser, page, host_site, help_hub, rds, lang):
    """/help in the composer offers the article, Enter inserts "Title: link", and the widget's card opens it."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    desk_context = await browser.new_context(viewport={"width": 1280, "height": 800})
    desk_context.set_default_timeout(TIMEOUT * 1000)
    try:
        desk = await open_desk(desk_context, help_hub.base_url, rds, user)
        await page.goto(host_site.add(f"/{lang}/card.html", host_page(help_hub.base_url, lang)))
        widget = Widget(page)
        await widget.start_chat("Ada", "I cannot get into my account")
        await chat_item(desk, "Ada").click()

        composer = desk.locator("#composer-text")
        await composer.press_sequentially("Try this: /help forgot password")
        menu = desk.locator("#canned-menu")
        await expect(menu.locator("li").first).to_contain_text("Forgot your password? Recover your account")
        await composer.press("Enter")
        link = f"{help_hub.base_url}/help/en/recover-your-account"
        await expect(composer).to_have_value(f"Try this: Forgot your password? Recover your account: {link}")
        await composer.press("Enter")

        card = widget.log.get_by_role("button", name="Try this: Forgot your password? Recover your account")
        await expect(card).to_be_visible()
        await card.click()
        panel_article = page.locator("livechat-widget section.art")
        await expect(panel_article.locator("h2")).to_have_text("Forgot your password? Recover your account")
        await panel_article.get_by_role("button", name="Back to the chat").click()
        await expect(panel_article).to_be_hidden()
        await expect(widget.composer).to_be_visible()
    finally:
        await desk_context.close()
