"""The help centre's pages, /help and /help/{lang}/{slug}: content, headers, inert Markdown,
and in real Chromium no request to any other origin."""

from __future__ import annotations

import urllib.parse

from playwright.async_api import expect
from tests.support.http import get




def test_index_lists_the_articles_by_topic(help_hub):
    """/help?lang=en has a heading per topic and a link to each English article."""
    status, _, body = get(f"{help_hub.base_url}/help?lang=en")
    html = body.decode()
    assert status == 200
    for heading in ("Account &amp; login", "Security", "Technical", "Billing"):
        assert f"<h2>{heading}</h2>" in html
    assert 'href="/help/en/recover-your-account"' in html and "/help/fr/" not in html


def test_index_follows_the_browser_language(help_hub):
    """Without ?lang= the index is in the first language of Accept-Language that has articles."""
    _, headers, body = get(f"{help_hub.base_url}/help", {"Accept-Language": "fr-BE,fr;q=0.9,en;q=0.5"})
    assert '<html lang="fr">' in body.decode() and 'href="/help/fr/recuperer-votre-compte"' in body.decode()
    assert "Accept-Language" in headers["vary"]


def test_pages_have_a_strict_csp_no_cookie_and_are_cacheable(help_hub):
    """Article pages carry a CSP without script, no Set-Cookie, a public Cache-Control and an ETag that gives 304."""
    url = f"{help_hub.base_url}/help/en/two-factor-authentication"
    status, headers, _ = get(url)
    assert status == 200
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    assert "set-cookie" not in headers
    assert headers["cache-control"].startswith("public, max-age=")
    assert get(url, {"If-None-Match": headers["etag"]})[0] == 304


def test_an_unknown_article_is_a_404(help_hub):
    """A slug that is in no article gives 404."""
    assert get(f"{help_hub.base_url}/help/en/no-such-article")[0] == 404


def test_html_in_an_article_is_shown_as_text(help_hub):
    """<script> and <img onerror> written in the Markdown come out escaped; javascript: links are not links."""
    _, _, body = get(f"{help_hub.base_url}/help/en/hostile-article")
    html = body.decode()
    assert "&lt;script&gt;window.__pwned = 1" in html and "<script" not in html
    assert "&lt;img src=&quot;x&quot; onerror" in html and "<img" not in html
    assert 'href="javascript:' not in html


async def test_a_script_in_an_article_does_not_run_in_chromium(page, help_hub):
    """Chromium shows the hostile article's script as text; nothing in it runs, no dialog opens."""
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    await page.goto(f"{help_hub.base_url}/help/en/hostile-article")
    await expect(page.locator("article")).to_contain_text('<script>window.__pwned = 1; alert("pwned")</script>')
    await expect(page.locator("article")).to_contain_text("After the script.")
    assert await page.get_by_role("link", name="a javascript link").count() == 0
    assert await page.evaluate("window.__pwned") is None
    assert dialogs == [] and page.js_errors == []


async def test_help_pages_make_no_request_to_another_origin(page, help_hub):
    """Index, search results and articles (one with a picture hosted elsewhere) load only from the hub."""
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    base = help_hub.base_url
    for path in ("/help", "/help?" + urllib.parse.urlencode({"q": "password", "lang": "en"}),
                 "/help/en/email-apps-imap-smtp", "/help/en/hostile-article", "/help/fr/boite-pleine"):
        await page.goto(base + path)
        await page.wait_for_load_state("networkidle")
    assert any(u.endswith("/help/static/help.css") for u in requested)
    assert [u for u in requested if not u.startswith(base + "/")] == []


async def test_the_search_box_finds_articles(page, help_hub):
    """Typing a question in the page's search box and pressing Enter lists the matching article."""
    await page.goto(f"{help_hub.base_url}/help?lang=en")
    await page.get_by_role("searchbox").fill("I forgot my password")
    await page.get_by_role("searchbox").press("Enter")
    await expect(page.locator("ol.results li").first).to_contain_text("Recover your account")
    await page.locator("ol.results a").first.click()
    await expect(page.locator("h1")).to_have_text("Forgot your password? Recover your account")
