"""The widget survives the hub going away: it reconnects, resumes, and loses or doubles nothing."""

from __future__ import annotations

import re

from playwright.async_api import expect

from chat import keys
from tests.support.browser import host_page, TIMEOUT, Widget
from tests.support.clients import agent, Client
from tests.support.servers import hub_env, HubProcess, TEST_CONFIG



async def test_hub_restart_mid_chat_resumes_without_loss_or_duplicates(page, host_site, own_redis, data_root, lang):
    """Stop the hub mid-chat, write while it is down, start it again on the same port: all arrives once."""
    redis_url, rds = own_redis
    data_dir = data_root / f"hub-{lang}"
    config = data_root / f"{lang}.toml"  # production-like grace periods: a restart is shorter than them
    config.write_text(re.sub(r"(?m)^(agent|visitor)_grace = .*$", r"\1_grace = 30", TEST_CONFIG))
    env = hub_env(redis_url, data_dir, config)
    first = HubProcess(env, data_dir).start()
    second = None
    agents: list[Client] = []
    try:
        agents.append((await agent(first, rds, f"a-{lang}", [lang], name="Sam"))[0])
        url = host_site.add(f"/{lang}/index.html", host_page(first.base_url, lang))
        await page.goto(url)
        widget = Widget(page)
        await widget.start_chat("Ada", "Before the restart")
        chat_id = await agents[0].assigned()
        # The agent answers what it has read: the widget sends its first message once welcomed,
        # which can be after the agent is assigned.
        await agents[0].until(lambda _: "Before the restart" in agents[0].view(chat_id).values(), timeout=TIMEOUT)
        await agents[0].send(type="message", chat_id=chat_id, text="agent before the restart", client_id="a1")
        await expect(widget.messages).to_have_count(2)

        first.terminate()
        await expect(widget.status).to_have_text("Connection lost. Reconnecting…")
        await widget.say("Written while the hub was down")
        await expect(widget.messages.last.locator(".state")).to_have_text("Sending…")
        await widget.screenshot("10-reconnecting-pending")

        second = HubProcess(env, data_dir, port=first.port).start()
        agents.append((await agent(second, rds, f"a-{lang}", [lang], name="Sam"))[0])
        try:
            await agents[1].until(lambda _: "Written while the hub was down" in agents[1].view(chat_id).values(),
                                  timeout=TIMEOUT * 2)
        except (TimeoutError, AssertionError) as exc:  # say what the widget and the hub were doing
            state = await page.evaluate("JSON.stringify(Object.values(sessionStorage))")
            raise AssertionError(f"agent never saw the message; agent frames {agents[1].received}; widget "
                                 f"status {await widget.status.inner_text()!r}, state {state}; hub log: "
                                 f"{second.log_tail(4000)}") from exc
        await agents[1].send(type="message", chat_id=chat_id, text="agent after the restart", client_id="a2")
        expected = ["Before the restart", "agent before the restart", "Written while the hub was down", "agent after the restart"]
        await expect(widget.messages.locator(".tx")).to_have_text(expected, timeout=TIMEOUT * 2000)
        await expect(widget.messages.locator(".state")).to_have_text(["Sent", "Sent"])
        assert await widget.messages.evaluate_all("els => els.map(e => +e.dataset.seq)") == [1, 2, 3, 4]
        await agents[1].got("agent after the restart")
        assert agents[1].view(chat_id) == dict(enumerate(expected, start=1))
        assert await rds.llen(keys.chat_log(chat_id)) == 4
    finally:
        for client in agents:
            await client.close()
        for hub in (first, second):
            if hub:
                hub.terminate()
