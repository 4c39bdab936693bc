"""Operator and supervisor HTTP APIs: /api/queue, /metrics, canned replies."""

from __future__ import annotations

import asyncio
import json
import re
from tests.support.clients import create_agent, login_cookie
from tests.support.http import arequest
from tests.support.metrics import parse_prometheus, sample
from tests.support.servers import hub_env, HubProcess



async def _supervisor(hub, rds, lang) -> str:
    return await asyncio.to_thread(login_cookie, hub, await create_agent(rds, f"s-{lang}", [lang], role="supervisor"))


async def _csrf(hub, cookie: str) -> str:
    page = await arequest(hub.base_url, "GET", "/supervisor", headers={"Cookie": cookie})
    return re.search(r'data-csrf="([^"]+)"', page.text).group(1)


async def test_api_queue_has_the_documented_shape(hub, rds, lang, visitors, sockets):
    """GET /api/queue answers the snapshot: waiting per plan and language, oldest wait, agents."""
    agent_user = await create_agent(rds, f"a-{lang}", [lang], max_chats=1)
    agent = await sockets.cookie(hub, await asyncio.to_thread(login_cookie, hub, agent_user))
    await agent.wait_type("welcome")
    await agent.send(type="status", status="online")
    await agent.wait_type("status")
    served = await visitors(lang, "Ada")
    await served.wait_type("assigned")
    waiting = await visitors(lang, "Bob")
    await waiting.wait_type("queued")

    reply = await arequest(hub.base_url, "GET", "/api/queue", headers={"Cookie": await _supervisor(hub, rds, lang)})
    assert reply.status == 200 and reply.header("content-type").startswith("application/json")
    snap = reply.json()
    assert snap["waiting_by_lang"][lang] == 1
    assert set(snap["waiting_by_plan"]) == {"free", "plus", "professional", "visionary"}
    assert snap["waiting"] == sum(snap["waiting_by_plan"].values())
    assert snap["oldest_wait"] >= 0 and snap["oldest_max_wait"] in {600, 900, 1200, 1800}
    assert {p["name"] for p in snap["plans"]} == set(snap["waiting_by_plan"])
    assert all({"waiting", "oldest_wait", "max_wait"} <= set(p) for p in snap["plans"])
    me = next(a for a in snap["agents"] if a["username"] == agent_user)
    assert me["status"] == "online" and me["load"] == 1 and me["capacity"] == 1 and me["free"] == 0
    for key in ("agents_online", "agents_away", "agents_busy", "free_capacity", "active", "emergencies",
                "tickets_today_total", "assignments_today"):
        assert isinstance(snap[key], int), key
    assert snap["agents_busy"] >= 1 and snap["active"] >= 1
    assert set(snap["tickets_today"]) >= {"offline", "max_wait", "visitor_left", "unresolved"}
    assert snap["avg_wait_today"] is None or snap["avg_wait_today"] >= 0
    assert snap["history"] and all(len(point) == 2 for point in snap["history"])


async def test_api_queue_is_for_supervisors_only(hub, rds, lang):
    """No session gets 401 and an agent's session 403 from /api/queue."""
    assert (await arequest(hub.base_url, "GET", "/api/queue")).status == 401
    cookie = await asyncio.to_thread(login_cookie, hub, await create_agent(rds, f"a-{lang}", [lang]))
    assert (await arequest(hub.base_url, "GET", "/api/queue", headers={"Cookie": cookie})).status == 403


async def test_metrics_parse_as_prometheus_text(hub, rds, lang, visitors, sockets):
    """/metrics is valid exposition text with connections, queue depth, waits, tickets, messages."""
    agent_user = await create_agent(rds, f"a-{lang}", [lang])
    agent = await sockets.cookie(hub, await asyncio.to_thread(login_cookie, hub, agent_user))
    await agent.wait_type("welcome")
    await agent.send(type="status", status="online")
    await agent.wait_type("status")
    ada = await visitors(lang, "Ada")
    await ada.wait_type("assigned")
    await ada.say("hello metrics")

    reply = await arequest(hub.base_url, "GET", "/metrics")
    assert reply.status == 200
    assert reply.header("content-type").startswith("text/plain; version=0.0.4")
    parsed = parse_prometheus(reply.text)
    types = parsed["types"]
    assert types["livechat_connections"] == "gauge"
    assert types["livechat_queue_depth"] == "gauge"
    assert types["livechat_wait_seconds"] == "histogram"
    assert types["livechat_tickets_total"] == "counter"
    assert types["livechat_messages_total"] == "counter"
    assert types["livechat_assignments_total"] == "counter"
    assert sample(parsed, "livechat_connections", kind="visitor") >= 1
    assert sample(parsed, "livechat_connections", kind="agent") >= 1
    assert sample(parsed, "livechat_queue_depth", plan="visionary") is not None
    assert sample(parsed, "livechat_assignments_total") >= 1
    assert sample(parsed, "livechat_tickets_total", trigger="unresolved") is not None
    buckets = [(s[1]["le"], s[2]) for s in parsed["samples"] if s[0] == "livechat_wait_seconds_bucket"]
    assert buckets[-1][0] == "+Inf"
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert buckets[-1][1] == sample(parsed, "livechat_wait_seconds_count") >= 1


async def test_metrics_need_the_bearer_token_when_one_is_set(redis_url, data_root, test_config_path):
    """With LIVECHAT_METRICS_TOKEN set, /metrics answers 403 without the token and 200 with it."""
    folder = data_root / "hub-metrics-token"
    other = HubProcess(hub_env(redis_url, folder, test_config_path, LIVECHAT_METRICS_TOKEN="s3cret-scrape"), folder)
    other.start()
    try:
        assert (await arequest(other.base_url, "GET", "/metrics")).status == 403
        wrong = await arequest(other.base_url, "GET", "/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 403
        right = await arequest(other.base_url, "GET", "/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
        assert right.status == 200 and parse_prometheus(right.text)["types"]
    finally:
        other.terminate()


async def test_metrics_refuse_a_remote_client_without_a_token(hub):
    """With no token configured, a client that is not on loopback gets 403."""
    reply = await arequest(hub.base_url, "GET", "/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert reply.status == 403


async def test_canned_replies_are_managed_by_supervisors_with_the_csrf_header(hub, rds, lang):
    """PUT and DELETE /api/canned/{shortcut} need a supervisor session and its CSRF token."""
    shortcut = f"hi{lang}"
    cookie = await _supervisor(hub, rds, lang)
    body = json.dumps({"text": "Hello there!"})
    headers = {"Cookie": cookie, "Content-Type": "application/json"}
    refused = await arequest(hub.base_url, "PUT", f"/api/canned/{shortcut}", body, headers)
    assert refused.status == 403
    token = await _csrf(hub, cookie)
    saved = await arequest(hub.base_url, "PUT", f"/api/canned/{shortcut}", body, {**headers, "X-CSRF-Token": token})
    assert saved.status == 200 and saved.json() == {"shortcut": shortcut, "text": "Hello there!"}

    agent_cookie = await asyncio.to_thread(login_cookie, hub, await create_agent(rds, f"a-{lang}", [lang]))
    listed = await arequest(hub.base_url, "GET", "/api/canned", headers={"Cookie": agent_cookie})
    assert {"shortcut": shortcut, "text": "Hello there!"} in listed.json()["replies"]
    by_agent = await arequest(hub.base_url, "DELETE", f"/api/canned/{shortcut}", None, {"Cookie": agent_cookie})
    assert by_agent.status == 403

    gone = await arequest(hub.base_url, "DELETE", f"/api/canned/{shortcut}", None, {**headers, "X-CSRF-Token": token})
    assert gone.status == 200
    listed = await arequest(hub.base_url, "GET", "/api/canned", headers={"Cookie": agent_cookie})
    assert shortcut not in [r["shortcut"] for r in listed.json()["replies"]]


async def test_canned_reply_with_a_bad_shortcut_is_refused(hub, rds, lang):
    """A shortcut outside a-z, 0-9, '_' and '-' gets 400 with the reason."""
    cookie = await _supervisor(hub, rds, lang)
    token = await _csrf(hub, cookie)
    reply = await arequest(hub.base_url, "PUT", "/api/canned/Bad%20Name", json.dumps({"text": "x"}),
                           {"Cookie": cookie, "X-CSRF-Token": token, "Content-Type": "application/json"})
    assert reply.status == 400 and "shortcut" in reply.json()["error"]


def test_wait_histogram_is_cumulative_from_per_bucket_stats():
    """chat.stats counts each wait in one bucket; /metrics turns that into cumulative buckets."""
    from chat.metrics import wait_buckets

    stats = {"wait_le_5": 3.0, "wait_le_30": 1.0, "wait_le_+Inf": 1.0, "wait_count": 5.0}
    assert [v for _, _, v in wait_buckets(stats)] == [3, 3, 4, 4, 4, 4, 4, 5]
    assert wait_buckets(stats)[-1][1] == {"le": "+Inf"}
