"""Signing in and out of the agent pages: sessions, CSRF, rate limits, page headers."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from argon2 import PasswordHasher

import agents.accounts
from chat import keys
from chat.config import Limits
from tests.support.browser import browser_login, TIMEOUT
from tests.support.clients import create_agent, fresh_address, login_cookie, PASSWORD
from tests.support.http import arequest, form, post_login, request
from tests.support.servers import TEST_CONFIG, start_configured_hub
from tests.support.waiting import eventually

DEFAULTS = Limits()

# A hub with small sign-in limits, so that each is reached in a few real requests.
LIMITED_CONFIG = TEST_CONFIG + """
[limits]
login_failures_per_address = 3
login_user_backoff_after = 3
login_user_backoff = 3
login_user_backoff_max = 3
login_verifications_per_user = 1
login_verifications_per_address = 1
"""


@pytest.fixture(scope="module")
def limited_hub(redis_url, data_root):
    process = start_configured_hub(redis_url, data_root / "login-hub", LIMITED_CONFIG)
    yield process
    process.terminate()


async def at_once(base_url: str, posts: list[tuple[str, str, str]]) -> list:
    """The login posts (username, password, client address) sent all at the same moment, each
    from a thread of its own; their replies in the same order."""
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(len(posts)) as pool:
        return await asyncio.gather(*(
            loop.run_in_executor(pool, request, base_url, "POST", "/agent/login", *_login_form(user, password, address))
            for user, password, address in posts))


def _login_form(username: str, password: str, address: str) -> tuple[str, dict[str, str]]:
    body, headers = form(username=username, password=password)
    return body, {**headers, "X-Forwarded-For": address}


async def production_cost_accounts(rds, monkeypatch, names: list[str], lang: str) -> None:
    """Accounts hashed with the library's real argon2 cost (as `livechat agent add` makes them),
    so that each password check takes the hub a noticeable time."""
    monkeypatch.setattr(agents.accounts, "_hasher", PasswordHasher())
    for name in names:
        await create_agent(rds, name, [lang])


async def test_login_in_the_browser_opens_the_dashboard_with_a_strict_cookie(hub, rds, lang, context):
    """A browser login lands on /agent with an HttpOnly, SameSite=Strict session cookie."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    page = await context.new_page()
    await browser_login(page, hub.base_url, user)
    assert page.url == hub.base_url + "/agent"
    cookie = next(c for c in await context.cookies() if c["name"] == "lc_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    await page.locator("#conn", has_text="Live").wait_for()


async def test_wrong_password_is_refused_without_a_session_cookie(hub, rds, lang):
    """A wrong password gets 401, the form again, and no lc_session cookie."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    reply = await post_login(hub.base_url, user, "not-the-password", **{"X-Forwarded-For": fresh_address()})
    assert reply.status == 401
    assert "lc_session" not in reply.cookies()
    assert 'name="password"' in reply.text and "Wrong username or password" in reply.text


async def test_supervisor_login_redirects_to_the_supervisor_view(hub, rds, lang):
    """A supervisor's login is a 303 to /supervisor with the session cookie."""
    user = await create_agent(rds, f"s-{lang}", [lang], role="supervisor")
    reply = await post_login(hub.base_url, user, PASSWORD)
    assert reply.status == 303 and reply.header("location") == "/supervisor"
    assert re.search(r"HttpOnly", reply.cookies()["lc_session"], re.I)


async def test_login_post_with_origin_but_without_csrf_pair_is_refused(hub, rds, lang):
    """A login post that carries Origin (any browser form) needs the double-submit pair."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    reply = await post_login(hub.base_url, user, PASSWORD, Origin="http://evil.example")
    assert reply.status == 403
    assert "lc_session" not in reply.cookies()


async def test_login_form_with_its_csrf_field_removed_is_refused_in_the_browser(hub, rds, lang, context):
    """The browser's own form, stripped of its hidden token, does not sign in."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    page = await context.new_page()
    await page.goto(hub.base_url + "/agent/login")
    await page.locator("input[name=csrf]").evaluate("node => node.remove()")
    await page.get_by_label("Username").fill(user)
    await page.get_by_label("Password").fill(PASSWORD)
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.get_by_role("button", name="Sign in").click()
    assert (await answer.value).status == 403
    assert not [c for c in await context.cookies() if c["name"] == "lc_session"]


async def test_failures_for_one_username_from_one_address_are_rate_limited(hub, rds, lang):
    """After five failures for a username from one address, even the right password from there gets 429."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    address = fresh_address()
    for _ in range(DEFAULTS.login_failures_per_user_address):
        reply = await post_login(hub.base_url, user, "wrong-password", **{"X-Forwarded-For": address})
        assert reply.status == 401
    reply = await post_login(hub.base_url, user, PASSWORD, **{"X-Forwarded-For": address})
    assert reply.status == 429 and int(reply.header("retry-after")) > 0
    assert "lc_session" not in reply.cookies()


async def test_failures_from_another_address_do_not_lock_the_agent_out(hub, rds, lang):
    """Five failures for a username from one address leave the real agent, elsewhere, free to sign in."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    attacker = fresh_address()
    for _ in range(DEFAULTS.login_failures_per_user_address):
        assert (await post_login(hub.base_url, user, "wrong-password", **{"X-Forwarded-For": attacker})).status == 401
    reply = await post_login(hub.base_url, user, PASSWORD, **{"X-Forwarded-For": fresh_address()})
    assert reply.status == 303 and "lc_session" in reply.cookies()


async def test_concurrent_wrong_passwords_are_all_counted(hub, rds, lang):
    """Forty wrong passwords sent at once from one address: no more than the limit are checked (401), the rest get 429."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    address = fresh_address()
    replies = await at_once(hub.base_url, [(user, f"wrong-{i}", address) for i in range(40)])
    statuses = [r.status for r in replies]
    assert set(statuses) <= {401, 429}
    assert 1 <= statuses.count(401) <= DEFAULTS.login_failures_per_user_address


async def test_failures_from_one_address_are_rate_limited(limited_hub, lang):
    """Failures from one client address, whatever the username, run into 429 at the limit; other addresses do not."""
    address = fresh_address()
    for i in range(3):  # login_failures_per_address of the limited hub
        reply = await post_login(limited_hub.base_url, f"nobody{i}-{lang}", "wrong-password", **{"X-Forwarded-For": address})
        assert reply.status == 401
    reply = await post_login(limited_hub.base_url, f"other-{lang}", "wrong-password", **{"X-Forwarded-For": address})
    assert reply.status == 429 and int(reply.header("retry-after")) > 0
    elsewhere = await post_login(limited_hub.base_url, f"other-{lang}", "wrong-password",
                                 **{"X-Forwarded-For": fresh_address()})
    assert elsewhere.status == 401


async def test_failures_from_many_addresses_slow_a_username_down_without_locking_it(limited_hub, rds, lang):
    """Failures for one username from many addresses space its attempts out (429, Retry-After), but the
    right password still gets in once the back-off has passed."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    for _ in range(3):  # login_user_backoff_after of the limited hub, each from an address of its own
        reply = await post_login(limited_hub.base_url, user, "wrong-password", **{"X-Forwarded-For": fresh_address()})
        assert reply.status == 401
    own = fresh_address()
    slowed = await post_login(limited_hub.base_url, user, PASSWORD, **{"X-Forwarded-For": own})
    assert slowed.status == 429 and 1 <= int(slowed.header("retry-after")) <= 3
    async def signed_in() -> bool:
        return (await post_login(limited_hub.base_url, user, PASSWORD, **{"X-Forwarded-For": own})).status == 303
    await eventually(signed_in, TIMEOUT, message="the right password to get in after the back-off")


async def test_concurrent_password_checks_from_one_address_are_bounded(limited_hub, rds, lang, monkeypatch):
    """Sign-ins from one address past login_verifications_per_address at once get 429 "at once", not a check."""
    names = [f"a{i}-{lang}" for i in range(6)]
    await production_cost_accounts(rds, monkeypatch, names, lang)
    address = fresh_address()
    replies = await at_once(limited_hub.base_url, [(name, PASSWORD, address) for name in names])
    refused = [r for r in replies if r.status == 429]
    assert refused and all("at once" in r.text and r.header("retry-after") for r in refused)
    assert {r.status for r in replies} == {303, 429}


async def test_concurrent_password_checks_for_one_username_are_bounded(limited_hub, rds, lang, monkeypatch):
    """Sign-ins for one username past login_verifications_per_user at once get 429 "at once", from any address."""
    user = f"a-{lang}"
    await production_cost_accounts(rds, monkeypatch, [user], lang)
    replies = await at_once(limited_hub.base_url, [(user, PASSWORD, fresh_address()) for _ in range(6)])
    refused = [r for r in replies if r.status == 429]
    assert refused and all("at once" in r.text and r.header("retry-after") for r in refused)
    assert {r.status for r in replies} == {303, 429}


async def test_no_client_address_is_stored_in_redis(hub, rds, lang):
    """The rate limiter keys hold a keyed hash of the address, never the address itself."""
    address = fresh_address()
    await post_login(hub.base_url, f"nobody-{lang}", "wrong-password", **{"X-Forwarded-For": address})
    names = [k.decode() async for k in rds.scan_iter(match=keys.login_attempts("*"))]
    assert names and not [n for n in names if address in n]


async def test_logout_needs_the_session_csrf_token_and_ends_the_session(hub, rds, lang):
    """Logout without the token is refused; with it the session is gone and the cookie cleared."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    cookie = await asyncio.to_thread(login_cookie, hub, user)
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
    user = await create_agent(rds, f"a-{lang}", [lang])
    cookie = await asyncio.to_thread(login_cookie, hub, user)
    reply = await arequest(hub.base_url, "GET", "/agent", headers={"Cookie": cookie})
    csp = reply.header("content-security-policy")
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "<script>" not in reply.text and " style=" not in reply.text


async def test_dashboard_modules_are_served_as_javascript_and_revalidated(hub, rds, lang):
    """The page loads its entry module from /agent/static/; every module is JavaScript, nosniff, no-cache."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    cookie = await asyncio.to_thread(login_cookie, hub, user)
    page = await arequest(hub.base_url, "GET", "/agent", headers={"Cookie": cookie})
    assert re.search(r'<script type="module" src="/agent/static/agent\.js\?v=[0-9a-f]+"></script>', page.text)
    for path in ("/agent/static/agent.js", "/agent/static/desk/protocol.js", "/agent/static/common.js"):
        reply = await arequest(hub.base_url, "GET", path)
        assert reply.status == 200, path
        assert reply.header("content-type").split(";")[0] in ("text/javascript", "application/javascript"), path
        assert reply.header("cache-control") == "no-cache" and reply.header("x-content-type-options") == "nosniff", path
