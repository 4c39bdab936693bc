"""Reports over time: a scripted day of chats, a mailed-in ticket and ratings, driven through
real sockets, mail and the API, comes out exactly in /api/reports, its CSV, `livechat report`,
/metrics and the supervisors' reports page; two hubs count each event once; a transcript
purge leaves the figures."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import pytest_asyncio
from playwright.async_api import expect
from redis.asyncio import Redis

from chat.identity import sign
from tests.support.browser import browser_login, screenshot
from tests.support.clients import agent, create_agent, PASSWORD as BROWSER_PASSWORD, visitor
from tests.support.desk import Desk
from tests.support.http import arequest
from tests.support.metrics import parse_prometheus, sample
from tests.support.redis import DATABASES
from tests.support.servers import HubProcess, LIVECHAT, TEST_CONFIG, TEST_SITE_SECRET
from tests.support.waiting import eventually

CONFIG = TEST_CONFIG + '\n[reports]\ntz = "UTC"\n'


def token(plan: str, sub: str) -> str:
    return sign(TEST_SITE_SECRET, {"sub": sub, "plan": plan, "exp": int(time.time()) + 600})


def around_today() -> str:
    """A range of three days around today (UTC), so a test running at midnight still sees its day."""
    today = datetime.now(timezone.utc).date()
    return f"from={today - timedelta(days=1)}&to={today + timedelta(days=1)}"


def totals(report: dict, group: str) -> dict:
    return next(row for row in report["totals"] if row["group"] == group)


async def served(desk_agent, hub, lang: str, plan: str, score: int | None, sub: str) -> str:
    """One chat answered at once: the visitor writes, the agent answers and closes it, the
    visitor rates it (or not)."""
    hello = {} if plan == "free" else {"identity": token(plan, sub)}
    guest, welcome = await visitor(hub, lang, **hello)
    assert welcome["plan"] == plan
    chat_id = welcome["chat_id"]
    await desk_agent.expect("assigned", chat_id=chat_id)
    await guest.expect("assigned")
    await guest.send(type="message", text="My invoice is wrong.", client_id="v1")
    await desk_agent.send(type="message", chat_id=chat_id, text="Let me look.", client_id=f"a-{chat_id}")
    await guest.expect("message", **{"from": "agent"})
    await desk_agent.send(type="close", chat_id=chat_id, resolution="resolved")
    await guest.expect("closed")
    if score is not None:
        await guest.send(type="rate", score=score, comment="thanks")
        await guest.expect("rated")
    await guest.close()
    return chat_id


@pytest.fixture(scope="module")
def day_desk(redis_url, tmp_path_factory):
    desk = Desk(redis_url, tmp_path_factory.mktemp("reports-day"), CONFIG, DATABASES["reports_day"])
    yield desk
    desk.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def scripted_day(day_desk):
    """The day: free 3 chats (rated 5, 4, none), plus 2 chats (rated 3, none), visionary 2
    chats of which one is abandoned after waiting (a visitor_left ticket), and one mail
    ticket (free plan) answered through the API within its target, then solved."""
    rds = Redis.from_url(day_desk.url)
    hub = day_desk.hub
    await create_agent(rds, "ivy", ["en"], max_chats=5, name="Ivy")
    await create_agent(rds, "otto", ["de"], max_chats=1, name="Otto")
    ivy, _ = await agent(hub, rds, "ivy", ["en"], create=False)
    otto, _ = await agent(hub, rds, "otto", ["de"], create=False)
    for n, score in enumerate((5, 4, None)):
        await served(ivy, hub, "en", "free", score, f"f{n}")
    for n, score in enumerate((3, None)):
        await served(ivy, hub, "en", "plus", score, f"p{n}")

    held, welcome = await visitor(hub, "de", identity=token("visionary", "v0"))
    await otto.expect("assigned", chat_id=welcome["chat_id"])
    waiting, _ = await visitor(hub, "de", identity=token("visionary", "v1"))
    await waiting.expect("queued")
    await waiting.send(type="message", text="Anyone there?", client_id="w1")
    await waiting.expect("message")
    await waiting.send(type="leave")
    assert (await waiting.expect("ticket"))["ref"]
    await otto.send(type="message", chat_id=welcome["chat_id"], text="Hallo!", client_id="o1")
    await otto.send(type="close", chat_id=welcome["chat_id"], resolution="resolved")
    await otto.expect("closed", chat_id=welcome["chat_id"])

    ref = await asyncio.to_thread(day_desk.new_ticket, "mia@example.org")
    status, _ = await asyncio.to_thread(day_desk.call, "POST", f"/api/tickets/{ref}/messages",
                                        {"text": "Fixed, please try again."}, "sam")
    assert status == 201
    status, _ = await asyncio.to_thread(day_desk.call, "PATCH", f"/api/tickets/{ref}", {"status": "solved"}, "sam")
    assert status == 200
    for desk_agent in (ivy, otto):
        await desk_agent.send(type="status", status="away")
        await desk_agent.expect("status", status="away")
    for client in (ivy, otto, held, waiting):
        await client.close()
    await rds.aclose()
    return day_desk


def report(desk: Desk, query: str) -> dict:
    status, body = desk.call("GET", f"/api/reports?{query}", user="boss")
    assert status == 200, body
    return body


async def test_a_scripted_day_counts_chats_per_plan_exactly(scripted_day):
    """Offered, answered, abandoned and handled chats per plan are exactly the day's."""
    body = await asyncio.to_thread(report, scripted_day, around_today() + "&group=plan")
    got = {row["group"]: (row["offered"], row["answered"], row["abandoned"], row["handled"]) for row in body["totals"]}
    assert got == {"free": (3, 3, 0, 3), "plus": (2, 2, 0, 2), "visionary": (2, 1, 1, 1)}
    assert [row["group"] for row in body["totals"]] == ["free", "plus", "visionary"]
    visionary = totals(body, "visionary")
    assert visionary["abandoned_wait_max"] is not None and visionary["abandoned_wait_max"] > 0


async def test_a_scripted_day_gives_waits_and_first_replies_from_the_buckets(scripted_day):
    """Every answered chat has a wait and a first reply; percentiles never pass the maximum."""
    body = await asyncio.to_thread(report, scripted_day, around_today() + "&group=plan")
    for plan in ("free", "plus"):
        row = totals(body, plan)
        assert row["wait_p50"] <= row["wait_p90"] <= row["wait_max"] < 60
        assert row["first_reply_p50"] <= row["first_reply_p90"] < 60 and row["handle_avg"] is not None
    assert totals(body, "free")["first_replies"] == 3 and totals(body, "visionary")["first_replies"] == 1


async def test_a_scripted_day_gives_csat_per_plan(scripted_day):
    """Average, distribution and response rate (rated / handled) of the ratings, per plan."""
    body = await asyncio.to_thread(report, scripted_day, around_today() + "&group=plan")
    free, plus = totals(body, "free"), totals(body, "plus")
    assert (free["rated"], free["csat_avg"], free["csat_5"], free["csat_4"], free["csat_response_rate"]) == (2, 4.5, 1, 1, 66.7)
    assert (plus["rated"], plus["csat_avg"], plus["csat_3"], plus["csat_response_rate"]) == (1, 3.0, 1, 50.0)


async def test_a_scripted_day_gives_tickets_by_trigger_channel_and_target(scripted_day):
    """The mailed-in ticket (free, email) was answered within its target and solved; the
    abandoned visionary chat became a visitor_left ticket on the chat channel."""
    body = await asyncio.to_thread(report, scripted_day, around_today() + "&group=plan")
    free, visionary = totals(body, "free"), totals(body, "visionary")
    assert (free["tickets"], free["tickets_email"], free["tickets_channel_email"]) == (1, 1, 1)
    assert (free["first_response"], free["first_response_met"], free["first_response_met_pct"], free["solved"]) == (1, 1, 100.0, 1)
    assert (visionary["tickets"], visionary["tickets_visitor_left"], visionary["tickets_channel_chat"]) == (1, 1, 1)
    by_channel = await asyncio.to_thread(report, scripted_day, around_today() + "&group=channel")
    assert totals(by_channel, "email")["tickets"] == 1 and totals(by_channel, "chat")["offered"] == 7


async def test_a_scripted_day_gives_the_agent_leaderboard(scripted_day):
    """Chats, ratings and time online per agent, most chats first."""
    body = await asyncio.to_thread(report, scripted_day, around_today())
    board = {row["agent"]: row for row in body["leaderboard"]}
    assert [row["agent"] for row in body["leaderboard"]][:2] == ["ivy", "otto"]
    assert (board["ivy"]["chats"], board["ivy"]["rated"], board["ivy"]["csat_avg"]) == (5, 3, 4.0)
    assert board["otto"]["chats"] == 1 and board["ivy"]["online_hours"] > 0 and board["ivy"]["first_reply_p50"] is not None


async def test_a_scripted_day_shows_in_prometheus_metrics(scripted_day):
    """/metrics has wait and first-reply histograms by plan, abandonment by plan, CSAT by score."""
    reply = await arequest(scripted_day.hub.base_url, "GET", "/metrics")
    parsed = parse_prometheus(reply.text)
    assert parsed["types"]["livechat_plan_wait_seconds"] == "histogram"
    assert sample(parsed, "livechat_plan_wait_seconds_count", plan="free") == 3
    assert sample(parsed, "livechat_plan_wait_seconds_bucket", plan="plus", le="+Inf") == 2
    assert sample(parsed, "livechat_plan_first_reply_seconds_count", plan="visionary") == 1
    assert sample(parsed, "livechat_chats_abandoned_total", plan="visionary") == 1
    assert [sample(parsed, "livechat_ratings_total", score=str(s)) for s in range(1, 6)] == [0, 0, 1, 1, 1]


async def test_the_csv_parses_and_matches_the_json(scripted_day):
    """Every CSV line is one JSON row (interval x group), the same figures in the same columns."""
    query = around_today() + "&group=plan&interval=hour"
    body = await asyncio.to_thread(report, scripted_day, query)
    text = await asyncio.to_thread(scripted_day.call, "GET", f"/api/reports.csv?{query}", None, "boss", None, True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == body["columns"] and len(rows) == len(body["rows"]) > 3 * 24
    for line, row in zip(rows, body["rows"]):
        assert line == {c: "" if row[c] is None else str(row[c]) for c in body["columns"]}
    assert sum(int(line["offered"]) for line in rows if line["group"] == "free") == 3


async def test_the_report_command_prints_the_same_csv(scripted_day):
    """`livechat report --csv` (for cron) prints what /api/reports.csv serves."""
    today = datetime.now(timezone.utc).date()
    args = ["--from", str(today - timedelta(days=1)), "--to", str(today + timedelta(days=1)), "--group", "plan", "--csv"]
    done = await asyncio.to_thread(subprocess.run, [LIVECHAT, "report", *args], env=scripted_day.env,
                                   capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    text = await asyncio.to_thread(scripted_day.call, "GET", f"/api/reports.csv?{around_today()}&group=plan", None,
                                   "boss", None, True)
    assert done.stdout.decode().replace("\r\n", "\n") == text.replace("\r\n", "\n")


async def test_a_bad_report_query_gets_a_clear_error(scripted_day):
    """A malformed date, an unknown group or a range past keep_days is refused with its code."""
    for query, code in (("from=yesterday", "bad_query"), ("group=mood", "bad_query"),
                        ("from=2020-01-01&to=2026-01-01", "range_too_long")):
        status, body = await asyncio.to_thread(scripted_day.call, "GET", f"/api/reports?{query}", None, "boss")
        assert (status, body["code"]) == (400, code)
    status, _ = await asyncio.to_thread(scripted_day.call, "GET", "/api/reports", None, "sam")
    assert status == 403


async def test_the_reports_page_draws_charts_with_no_error_and_no_other_origin(scripted_day, context):
    """Chromium renders the charts, tables and leaderboard as inline SVG from the hub alone."""
    await create_agent_for_browser(scripted_day)
    page = await context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    await browser_login(page, scripted_day.hub.base_url, "lead")
    await page.goto(scripted_day.hub.base_url + "/supervisor/reports")
    await page.select_option("#report-group", "plan")
    await page.locator("#report-preset").select_option("7d")
    await expect(page.locator("#table-chats tbody tr")).to_have_count(3)
    await expect(page.locator("#chart-chats svg rect.bar").first).to_be_visible()
    await expect(page.locator("#chart-wait svg path.chart-line")).to_have_count(3)
    await expect(page.locator("#chart-week svg rect.heat").first).to_be_visible()
    await expect(page.locator("#leaderboard tbody tr").first).to_contain_text("ivy")
    await expect(page.locator("#report-csv")).to_have_attribute("href", re.compile(r"^/api/reports\.csv\?.*group=plan"))
    await screenshot(page, "reports-page", full_page=True)
    assert page.js_errors == []
    others = [u for u in requests if not u.startswith(scripted_day.hub.base_url) and not u.startswith("data:")]
    assert others == []


async def create_agent_for_browser(desk: Desk) -> None:
    rds = Redis.from_url(desk.url)
    from agents.accounts import save_account

    await save_account(rds, "lead", BROWSER_PASSWORD, role="supervisor", name="Lead", langs=["en"])
    await rds.aclose()


# --- two hubs, purge ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def desk(redis_url, tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    desk = Desk(redis_url, root, CONFIG, DATABASES["reports"])
    desk.second = HubProcess(desk.env, root / "hub2").start()
    yield desk
    desk.second.terminate()
    desk.stop()


def by_lang(desk: Desk, lang: str) -> dict:
    body = report(desk, around_today() + "&group=lang")
    return next((row for row in body["totals"] if row["group"] == lang), {})


async def test_two_hubs_recording_the_same_events_count_each_once(desk, lang):
    """An agent on both hubs replies from each (one first reply), and a waiting visitor's
    sockets on both hubs leave at once (one abandonment)."""
    rds = Redis.from_url(desk.url)
    ann, _ = await agent(desk.hub, rds, f"ann-{lang}", [lang], max_chats=1)
    ann_b, _ = await agent(desk.second, rds, f"ann-{lang}", [lang], create=False, online=False)
    guest, welcome = await visitor(desk.hub, lang)
    chat_id = welcome["chat_id"]
    await ann.expect("assigned", chat_id=chat_id)
    await ann_b.expect("assigned", chat_id=chat_id)
    await ann.send(type="message", chat_id=chat_id, text="Hello from A", client_id="a1")
    await guest.expect("message", text="Hello from A")
    await ann_b.send(type="message", chat_id=chat_id, text="Hello from B", client_id="b1")
    await guest.expect("message", text="Hello from B")

    waiting, second = await visitor(desk.hub, lang)
    await waiting.expect("queued")
    twin, _ = await visitor(desk.second, lang, resume=second["resume"])
    await asyncio.gather(waiting.send(type="leave"), twin.send(type="leave"))
    await waiting.expect("closed")
    await ann.send(type="close", chat_id=chat_id, resolution="resolved")
    await guest.expect("closed")

    async def counted() -> dict:
        row = await asyncio.to_thread(by_lang, desk, lang)
        return row if row.get("handled") == 1 and row.get("abandoned") else None

    row = await eventually(counted, message="the chats in the report")
    assert (row["offered"], row["answered"], row["first_replies"], row["abandoned"], row["handled"]) == (2, 1, 1, 1, 1)
    for client in (ann, ann_b, guest, waiting, twin):
        await client.close()
    await rds.aclose()


async def test_a_transcript_purge_leaves_the_rollups(desk, lang):
    """`livechat transcript delete --email` erases the chat; its figures stay in the report."""
    rds = Redis.from_url(desk.url)
    address = f"purge-{lang}@example.org"
    bea, _ = await agent(desk.hub, rds, f"bea-{lang}", [lang])
    guest, welcome = await visitor(desk.hub, lang, email=address, name="Pat")
    chat_id = welcome["chat_id"]
    await bea.expect("assigned", chat_id=chat_id)
    await guest.send(type="message", text="Please delete my data afterwards.", client_id="p1")
    await guest.expect("message")
    await bea.send(type="close", chat_id=chat_id, resolution="resolved")
    await guest.expect("closed")
    await guest.send(type="rate", score=2)
    await guest.expect("rated")
    before = await asyncio.to_thread(by_lang, desk, lang)
    assert (before["handled"], before["rated"], before["csat_2"]) == (1, 1, 1)

    done = await asyncio.to_thread(subprocess.run, [LIVECHAT, "transcript", "delete", "--email", address],
                                   env=desk.env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not await rds.exists(f"lc:chat:{{{chat_id}}}")
    assert await asyncio.to_thread(by_lang, desk, lang) == before
    await bea.close()
    await guest.close()
    await rds.aclose()
