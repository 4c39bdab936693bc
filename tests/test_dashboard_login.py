"""Signing in and out of the agent pages: sessions, CSRF, rate limits, page headers."""

from __future__ import annotations

import re
from types import SimpleNamespace

from agents import login_limit
from chat import keys
from tests.dashboard_helpers import (
    PASSWORD,
    arequest,
    browser,  # noqa: F401 - fixture
    browser_login,
    context,  # noqa: F401 - fixture
    fake_address,
    form,
    make_account,
    post_login,
    session_cookie,
)


async def test_login_in_the_browser_opens_the_dashboard_with_a_strict_cookie(hub, rds, lang, context):
    """A browser login lands on /agent with an HttpOnly, SameSite=Strict session cookie."""
    user = await make_account(rds, f"a-{lang}", lang)
    page = await context.new_page()
    await browser_login(page, hub.base_url, user)
    assert page.url == hub.base_url + "/agent"
    cookie = next(c for c in await context.cookies() if c["name"] == "lc_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    await page.locator("#conn", has_text="Live").wait_for()


async def test_wrong_password_is_refused_without_a_session_cookie(hub, rds, lang):
    """A wrong password gets 401, the form again, and no lc_session cookie."""
    user = await make_account(rds, f"a-{lang}", lang)
    reply = await post_login(hub.base_url, user, "not-the-password", **{"X-Forwarded-For": fake_address()})
    assert reply.status == 401
    assert "lc_session" not in reply.cookies()
    assert 'name="password"' in reply.text and "Wrong username or password" in reply.text


async def test_supervisor_login_redirects_to_the_supervisor_view(hub, rds, lang):
    """A supervisor's login is a 303 to /supervisor with the session cookie."""
    user = await make_account(rds, f"s-{lang}", lang, role="supervisor")
    reply = await post_login(hub.base_url, user, PASSWORD)
    assert reply.status == 303 and reply.header("location") == "/supervisor"
    assert re.search(r"HttpOnly", reply.cookies()["lc_session"], re.I)


async def test_login_post_with_origin_but_without_csrf_pair_is_refused(hub, rds, lang):
    """A login post that carries Origin (any browser form) needs the double-submit pair."""
    user = await make_account(rds, f"a-{lang}", lang)
    reply = await post_login(hub.base_url, user, PASSWORD, Origin="http://evil.example")
    assert reply.status == 403
    assert "lc_session" not in reply.cookies()


async def test_login_form_with_its_csrf_field_removed_is_refused_in_the_browser(hub, rds, lang, context):
    """The browser's own form, stripped of its hidden token, does not sign in."""
    user = await make_account(rds, f"a-{lang}", lang)
    page = await context.new_page()
    await page.goto(hub.base_url + "/agent/login")
    await page.locator("input[name=csrf]").evaluate("node => node.remove()")
    await page.get_by_label("Username").fill(user)
    await page.get_by_label("Password").fill(PASSWORD)
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.get_by_role("button", name="Sign in").click()
    assert (await answer.value).status == 403
    assert not [c for c in await context.cookies() if c["name"] == "lc_session"]


async def test_failures_for_one_username_are_rate_limited(hub, rds, lang):
    """After five failures for a username, even the right password gets 429 for a while."""
    user = await make_account(rds, f"a-{lang}", lang)
    for _ in range(login_limit.USERNAME_LIMIT):
        reply = await post_login(hub.base_url, user, "wrong-password", **{"X-Forwarded-For": fake_address()})
        assert reply.status == 401
    reply = await post_login(hub.base_url, user, PASSWORD, **{"X-Forwarded-For": fake_address()})
    assert reply.status == 429 and int(reply.header("retry-after")) > 0
    assert "lc_session" not in reply.cookies()


async def test_failures_from_one_address_are_rate_limited(hub, rds, lang):
    """Failures from one client address, whatever the username, run into 429 at the limit."""
    address = fake_address()
    hub_rt = SimpleNamespace(secret=await rds.get(keys.SERVER_SECRET))
    # Nineteen earlier failures from this address (argon2 makes each real one cost ~0.1-1 s).
    await rds.set(login_limit.address_key(hub_rt, address), login_limit.ADDRESS_LIMIT - 1, ex=login_limit.WINDOW)
    reply = await post_login(hub.base_url, f"nobody-{lang}", "wrong-password", **{"X-Forwarded-For": address})
    assert reply.status == 401
    reply = await post_login(hub.base_url, f"other-{lang}", "wrong-password", **{"X-Forwarded-For": address})
    assert reply.status == 429
    elsewhere = await post_login(hub.base_url, f"other-{lang}", "wrong-password", **{"X-Forwarded-For": fake_address()})
    assert elsewhere.status == 401


async def test_no_client_address_is_stored_in_redis(hub, rds, lang):
    """The rate limiter keys hold a keyed hash of the address, never the address itself."""
    address = fake_address()
    await post_login(hub.base_url, f"nobody-{lang}", "wrong-password", **{"X-Forwarded-For": address})
    names = [k.decode() async for k in rds.scan_iter(match="lc:login:*")]
    assert names and not [n for n in names if address in n]


async def test_logout_needs_the_session_csrf_token_and_ends_the_session(hub, rds, lang):
    """Logout without the token is refused; with it the session is gone and the cookie cleared."""
    user = await make_account(rds, f"a-{lang}", lang)
    cookie = await session_cookie(hub.base_url, user)
    page = await arequest(hub.base_url, "GET", "/agent", headers={"Cookie": cookie})
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    body, headers = form(csrf="wrong")
    refused = await arequest(hub.base_url, "POST", "/agent/logout", body, {**headers, "Cookie": cookie})
    assert refused.status == 403
    body, headers = form(csrf=token)
    done = await arequest(hub.base_url, "POST", "/agent/logout", body, {**headers, "Cookie": cookie})
    assert done.status == 303 and done.header("location") == "/agent/login"
    assert re.search(r"lc_session=\"?\"?;.*Max-Age=0", done.cookies()["lc_session"], re.I)
    after = await arequest(hub.base_url, "GET", "/agent", headers={"Cookie": cookie})
    assert after.status == 303 and after.header("location") == "/agent/login"


async def test_agent_page_without_a_session_redirects_to_login(hub):
    """No session: /agent and /supervisor send the browser to the login form."""
    for path in ("/agent", "/supervisor"):
        reply = await arequest(hub.base_url, "GET", path)
        assert reply.status == 303 and reply.header("location") == "/agent/login"


async def test_pages_carry_a_strict_content_security_policy(hub, rds, lang):
    """The dashboard forbids inline and third-party scripts, styles and framing."""
    user = await make_account(rds, f"a-{lang}", lang)
    cookie = await session_cookie(hub.base_url, user)
    reply = await arequest(hub.base_url, "GET", "/agent", headers={"Cookie": cookie})
    csp = reply.header("content-security-policy")
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "<script>" not in reply.text and " style=" not in reply.text
