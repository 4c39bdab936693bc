"""Account changes made with `livechat agent …` take effect at once: a new role or password ends
the user's sessions, `disable` and `remove` end sessions and open sockets and stop sign-ins."""

from __future__ import annotations

import asyncio
import subprocess
from tests.support.clients import agent, create_agent, login_cookie, PASSWORD, PASSWORD as AGENT_PASSWORD
from tests.support.http import arequest, post_login
from tests.support.servers import hub_env, LIVECHAT



async def livechat_agent(redis_url: str, tmp_path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """Run `livechat agent …` against the session's Redis, as an operator would."""
    return await asyncio.to_thread(subprocess.run, [LIVECHAT, "agent", *args], input=stdin,
                                   env=hub_env(redis_url, tmp_path), capture_output=True, text=True, timeout=60)


async def open_desk(hub, rds, username: str, lang: str):
    """An agent signed in over HTTP with its desk socket open; the desk and the session cookie."""
    await create_agent(rds, username, [lang])
    cookie = await asyncio.to_thread(login_cookie, hub, username)
    desk, _ = await agent(hub, rds, username, [lang], create=False, cookie=cookie)
    return desk, cookie


async def status_of(hub, path: str, cookie: str) -> int:
    return (await arequest(hub.base_url, "GET", path, headers={"Cookie": cookie})).status


async def test_role_change_ends_the_supervisor_session(hub, rds, lang, redis_url, tmp_path):
    """After `agent add USER --role agent`, the former supervisor's cookie reads neither the queue nor tickets."""
    user = await create_agent(rds, f"s-{lang}", [lang], role="supervisor")
    cookie = await asyncio.to_thread(login_cookie, hub, user)
    assert await status_of(hub, "/api/queue", cookie) == 200
    done = await livechat_agent(redis_url, tmp_path, "add", user, "--role", "agent", "--langs", lang,
                                stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    assert await status_of(hub, "/api/queue", cookie) == 401
    assert await status_of(hub, "/api/tickets", cookie) == 401


async def test_password_change_ends_every_session_of_the_user(hub, rds, lang, redis_url, tmp_path):
    """A new password set with `agent add` ends both of the user's sessions; the new password signs in."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    cookies = [await asyncio.to_thread(login_cookie, hub, user) for _ in range(2)]
    done = await livechat_agent(redis_url, tmp_path, "add", user, "--langs", lang, stdin="a-new-password-456\n")
    assert done.returncode == 0, done.stderr
    assert [await status_of(hub, "/api/agents", c) for c in cookies] == [401, 401]
    assert (await post_login(hub.base_url, user, "a-new-password-456")).status == 303


async def test_saving_an_account_unchanged_keeps_its_sessions(hub, rds, lang, redis_url, tmp_path):
    """`agent add` with the same role and password (say, new languages) leaves the user signed in."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    cookie = await asyncio.to_thread(login_cookie, hub, user)
    done = await livechat_agent(redis_url, tmp_path, "add", user, "--langs", f"{lang},en", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    assert await status_of(hub, "/api/agents", cookie) == 200


async def test_disable_closes_the_open_desk_and_ends_the_session(hub, rds, lang, redis_url, tmp_path):
    """`agent disable USER` closes the user's agent socket (1008) and its cookie stops working."""
    desk, cookie = await open_desk(hub, rds, f"a-{lang}", lang)
    done = await livechat_agent(redis_url, tmp_path, "disable", f"a-{lang}")
    assert done.returncode == 0, done.stderr
    assert await desk.closed_code() == 1008
    assert await status_of(hub, "/api/agents", cookie) == 401


async def test_disabled_account_cannot_sign_in_until_enabled(hub, rds, lang, redis_url, tmp_path):
    """A disabled account's right password is refused (401); `agent enable` lets it sign in again."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    assert (await livechat_agent(redis_url, tmp_path, "disable", user)).returncode == 0
    assert (await post_login(hub.base_url, user, PASSWORD)).status == 401
    assert (await livechat_agent(redis_url, tmp_path, "enable", user)).returncode == 0
    assert (await post_login(hub.base_url, user, PASSWORD)).status == 303


async def test_remove_deletes_the_account_and_closes_its_sockets(hub, rds, lang, redis_url, tmp_path):
    """`agent remove USER` closes the user's agent socket, ends the session and refuses sign-in."""
    desk, cookie = await open_desk(hub, rds, f"a-{lang}", lang)
    done = await livechat_agent(redis_url, tmp_path, "remove", f"a-{lang}")
    assert done.returncode == 0, done.stderr
    assert await desk.closed_code() == 1008
    assert await status_of(hub, "/api/agents", cookie) == 401
    assert (await post_login(hub.base_url, f"a-{lang}", AGENT_PASSWORD)).status == 401


async def test_remove_or_disable_of_an_unknown_account_fails(redis_url, tmp_path):
    """`agent remove` / `agent disable` of a name with no account exits non-zero and says so."""
    for action in ("remove", "disable"):
        done = await livechat_agent(redis_url, tmp_path, action, "nobody-at-all")
        assert done.returncode != 0 and "no account" in done.stderr
