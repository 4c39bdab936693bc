"""The widget on a hostile or strict host page: foreign CSS, a strict CSP, and privacy."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.async_api import expect
from tests.support.browser import host_page, Widget



HOSTILE_CSS = """
* { box-sizing: content-box; }
div, button, section, form, input, textarea, ol, li, p, span, label, select, header, h2 {
  all: unset; font-size: 40px !important; color: red !important; display: inline !important;
}
body { font: 40px/3 serif; color: red; transform: none; }
livechat-widget { display: none !important; opacity: 0 !important; position: absolute !important; }
"""


def strict_csp(hub_url: str) -> str:
    """What a careful site sends: nothing inline, nothing from anywhere but itself and the hub."""
    ws = hub_url.replace("http", "ws", 1)
    return ("default-src 'none'; "
            f"script-src {hub_url}; style-src 'self' {hub_url}; connect-src {ws}; img-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
            "require-trusted-types-for 'script'; trusted-types 'none'")


async def chat_round_trip(widget: Widget, agent, lang: str) -> None:
    """Start a chat, get assigned, and exchange one message each way."""
    await widget.start_chat("Ada", "Hello from a tricky page")
    chat_id = await agent.assigned()
    await agent.until(lambda _: "Hello from a tricky page" in agent.view(chat_id).values())
    await agent.send(type="message", chat_id=chat_id, text="Hello Ada", client_id="a1")
    await expect(widget.messages.locator(".tx")).to_have_text(["Hello from a tricky page", "Hello Ada"])
    await expect(widget.messages.first.locator(".state")).to_have_text("Sent")


async def test_aggressive_host_css_does_not_break_the_widget(page, host_site, hub, make_agent, lang):
    """Host rules that unset every div and button and hide the widget's element leave the widget usable."""
    agent = await make_agent(lang)
    host_site.add(f"/{lang}/hostile.css", HOSTILE_CSS, "text/css")
    url = host_site.add(f"/{lang}/index.html", host_page(hub.base_url, lang, head=f'<link rel="stylesheet" href="/{lang}/hostile.css">'))
    await page.goto(url)
    widget = Widget(page)
    await expect(page.locator("#host-button")).to_have_css("color", "rgb(255, 0, 0)")  # the host CSS applies
    await expect(widget.launcher).to_be_visible()
    await expect(widget.launcher).to_have_css("font-size", "15px")
    await expect(widget.launcher).to_have_css("background-color", "rgb(29, 78, 216)")
    await widget.launcher.click()
    await expect(widget.panel).to_be_visible()
    box = await widget.panel.bounding_box()
    assert box and 300 <= box["width"] <= 400, box
    await chat_round_trip(widget, agent, lang)
    await widget.screenshot("08-hostile-css")


async def test_widget_works_under_a_strict_csp(page, host_site, hub, make_agent, lang):
    """With script-src/style-src/connect-src limited to the hub and Trusted Types on, nothing is blocked."""
    agent = await make_agent(lang)
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text or "TrustedHTML" in m.text else None)
    url = host_site.add(f"/{lang}/strict.html", host_page(hub.base_url, lang), Content_Security_Policy=strict_csp(hub.base_url))
    await page.goto(url)
    widget = Widget(page)
    await expect(widget.launcher).to_have_css("background-color", "rgb(29, 78, 216)")  # widget.css loaded
    await chat_round_trip(widget, agent, lang)
    await agent.send(type="close", chat_id=(agent.frames_of("assigned")[0]["chat_id"]), resolution="resolved")
    await expect(widget.rating).to_be_visible()
    assert violations == []
    assert page.js_errors == []
    await widget.screenshot("09-strict-csp")


async def test_no_request_leaves_for_another_host_and_no_cookie_is_set(page, context, host_site, hub, make_agent, lang):
    """Every request goes to the host site or the hub, no third party, and no cookie appears anywhere."""
    agent = await make_agent(lang)
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    page.on("websocket", lambda ws: requests.append(ws.url))  # sockets are not "requests" to Playwright
    url = host_site.add(f"/{lang}/index.html", host_page(hub.base_url, lang))
    await page.goto(url)
    widget = Widget(page)
    await chat_round_trip(widget, agent, lang)
    await page.reload()
    await expect(widget.messages).to_have_count(2)
    allowed = {urlsplit(host_site.origin)[:2], urlsplit(hub.base_url)[:2], ("ws", urlsplit(hub.base_url).netloc)}
    foreign = [u for u in requests if urlsplit(u)[:2] not in allowed]
    assert foreign == []
    assert any(u.startswith(hub.ws_url + "/ws/visitor") for u in requests)
    hub_paths = sorted({urlsplit(u).path for u in requests if urlsplit(u).netloc == urlsplit(hub.base_url).netloc})
    assert hub_paths == ["/widget.css", "/widget.js", "/widget/help.css", "/widget/help.js", "/ws/visitor"]
    assert await context.cookies() == []
    assert await page.evaluate("document.cookie") == ""
