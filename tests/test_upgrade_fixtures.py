"""Upgrades keep every word: a Redis dump of each released layout, loaded into a real
redis-server and opened by today's hub, shows all of its desk through the public paths.

The dumps and how they were made: tests/upgrade/<layout>/README.md.
"""

from __future__ import annotations

import asyncio
import json
import time
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from redis.asyncio import Redis

from chat import schema
from chat.embedded_redis import redis_server_binary
from tests.support.clients import agent, login_cookie, visitor
from tests.support.mail import SmtpServer
from tests.support.servers import free_port, hub_env, HubProcess, LIVECHAT
from tests.support.waiting import wait_until

LAYOUT_1 = Path(__file__).parent / "upgrade" / "v1"
MANIFEST = json.loads((LAYOUT_1 / "manifest.json").read_text())
# Layout-1 tickets younger than [tickets] pending_days (7 days) come out of the migration open
# and due; older ones as handled (solved): which, depends on the dump's age when the test runs.
YOUNG = time.time() - MANIFEST["captured_at"] < 7 * 86400

# The hubs of the dump come back at once (a quick restart): nobody's grace runs out, and a
# waiting visitor who was offered "wait or ticket" while the hub was down has time to answer.
UPGRADED_DESK = (LAYOUT_1 / "desk.toml").read_text().split("[timing]")[0] + """
[timing]
agent_grace = 315360000
visitor_grace = 315360000
offline_idle = 60
wait_choice_timeout = 3600
heartbeat = 0.2
"""


class RestoredRedis:
    """A real redis-server started on a copy of a dump (the way a backup is restored)."""

    def __init__(self, folder: Path, dump: Path):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(dump, folder / "dump.rdb")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(folder),
             "--dbfilename", "dump.rdb", "--appendonly", "no", "--save", "", "--logfile", str(folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._loaded, 15, message="redis-server to load the dump")

    def _loaded(self) -> bool:
        done = subprocess.run([str(Path(redis_server_binary()).with_name("redis-cli")), "-p", str(self.port),
                               "dbsize"], capture_output=True, text=True)
        return done.returncode == 0 and done.stdout.strip().isdigit() and int(done.stdout) > 0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def livechat(redis_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = hub_env(redis_url, tmp_path / "cli")
    return subprocess.run([LIVECHAT, *args], env=env, capture_output=True, text=True, timeout=60)


async def keyspace(redis_url: str) -> dict[bytes, object]:
    """Every key and its value (not DUMP's bytes: a read may rehash a hash and reorder them),
    to compare two states of the data exactly."""
    client = Redis.from_url(redis_url)
    readers = {b"string": client.get, b"hash": client.hgetall, b"set": client.smembers,
               b"list": lambda k: client.lrange(k, 0, -1), b"zset": lambda k: client.zrange(k, 0, -1, withscores=True)}
    try:
        return {key: await readers[await client.type(key)](key) for key in sorted(await client.keys("*"))}
    finally:
        await client.aclose()


@pytest.fixture
def restored(tmp_path):
    server = RestoredRedis(tmp_path / "redis", LAYOUT_1 / "dump.rdb")
    yield server
    server.stop()


# --- migrating ----------------------------------------------------------------------------


def test_dry_run_names_the_migration_and_changes_nothing(restored, tmp_path):
    """`livechat migrate --dry-run` on layout-1 data lists what would change and writes nothing."""
    before = asyncio.run(keyspace(restored.url))
    done = livechat(restored.url, tmp_path, "migrate", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert f"schema version 1: would migrate to {schema.CURRENT}" in done.stdout
    tickets = "2 tickets given a status" if YOUNG else "2 tickets older than pending_days taken as handled"
    for change in ("handling-time average", tickets, "7 chats told the hash",
                   "2 open sessions listed"):
        assert change in done.stdout, done.stdout
    assert asyncio.run(keyspace(restored.url)) == before


def test_migrating_twice_changes_nothing_more(restored, tmp_path):
    """A migration repeated (a crash after its work, before the version was recorded) is a no-op."""
    first = livechat(restored.url, tmp_path, "migrate")
    assert first.returncode == 0 and f"migrated to {schema.CURRENT}" in first.stdout, first.stdout + first.stderr
    migrated = asyncio.run(keyspace(restored.url))

    async def forget_version() -> None:  # what a crash between a migration and its record leaves
        client = Redis.from_url(restored.url)
        await client.set("lc:schema", 1)
        await client.aclose()

    asyncio.run(forget_version())
    again = livechat(restored.url, tmp_path, "migrate")
    assert again.returncode == 0, again.stderr
    assert asyncio.run(keyspace(restored.url)) == migrated
    assert "up to date" in livechat(restored.url, tmp_path, "migrate").stdout


def test_processes_starting_together_migrate_once(restored, tmp_path):
    """Three migrators at once: one migrates under the lock, the others wait and find it done."""
    env = hub_env(restored.url, tmp_path / "cli")
    runs = [subprocess.Popen([LIVECHAT, "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(3)]
    outputs = [run.communicate(timeout=60) for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    assert sum(f"migrated to {schema.CURRENT}" in out for out, _ in outputs) == 1, outputs
    assert sum("migrated the data to schema version" in err for _, err in outputs) == 1, outputs


def test_data_of_a_newer_release_is_refused(restored, tmp_path):
    """`livechat serve` on data with a higher schema version stops with a message saying what to do."""
    async def newer() -> None:  # as a later release would have left it
        client = Redis.from_url(restored.url)
        await client.set("lc:schema", schema.CURRENT + 1)
        await client.aclose()

    asyncio.run(newer())
    done = livechat(restored.url, tmp_path, "serve", "--port", str(free_port()))
    assert done.returncode != 0
    assert f"schema version {schema.CURRENT + 1}" in done.stderr and "restore the backup" in done.stderr


# --- the upgraded desk, through its public paths --------------------------------------------


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory):
    """Layout-1 data, a mail server, and today's hub started on them (which migrates)."""
    root = tmp_path_factory.mktemp("upgraded")
    redis_server = RestoredRedis(root / "redis", LAYOUT_1 / "dump.rdb")
    smtp = SmtpServer().start()
    desk = root / "desk.toml"
    desk.write_text(UPGRADED_DESK)
    hub = HubProcess(hub_env(redis_server.url, root / "hub", desk, SMTP_URL=smtp.url + "?starttls=never"),
                     root / "hub").start()
    yield hub, smtp
    hub.terminate()
    smtp.stop()
    redis_server.stop()


def api(hub: HubProcess, path: str, cookie: str) -> dict:
    request = urllib.request.Request(hub.base_url + path, headers={"Cookie": cookie, "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def supervisor(hub: HubProcess) -> str:
    return login_cookie(hub, "alex", MANIFEST["accounts"]["alex"]["password"])


def test_every_account_logs_in_with_its_password(upgraded):
    """Agents and the supervisor of the old data sign in with their old passwords."""
    hub, _ = upgraded
    for username, account in MANIFEST["accounts"].items():
        assert login_cookie(hub, username, account["password"]).startswith("lc_session=")


async def test_agent_dashboard_lists_its_active_chat_with_history(upgraded):
    """The agent's socket welcomes it with the chat it held, history included."""
    hub, _ = upgraded
    active = MANIFEST["chats"]["active"]
    cookie = await asyncio.to_thread(login_cookie, hub, "sam", MANIFEST["accounts"]["sam"]["password"])
    client, welcome = await agent(hub, None, "sam", ["en"], online=False, create=False, cookie=cookie)
    try:
        chat = next(c for c in welcome["chats"] if c["chat_id"] == active["chat_id"])
        assert [m["text"] for m in chat["history"]] == active["history"]
        assert chat["visitor"]["plan"] == "visionary" and chat["visitor"]["verified"] is True
    finally:
        await client.close()


async def test_active_visitor_resumes_with_its_history(upgraded):
    """The visitor of the active chat resumes it and gets every message again, in order."""
    hub, _ = upgraded
    active = MANIFEST["chats"]["active"]
    client, welcome = await visitor(hub, "en", resume=active["resume"], last_seq=0)
    try:
        assert welcome["chat_id"] == active["chat_id"] and welcome["status"] == "active"
        assert [m["text"] for m in await client.messages(3)] == active["history"]
    finally:
        await client.close()


async def test_waiting_visitors_resume_with_history_and_place(upgraded):
    """Both waiting visitors come back queued, at places 1 and 2, with what they wrote."""
    hub, _ = upgraded
    for name in ("waiting1", "waiting2"):
        chat = MANIFEST["chats"][name]
        client, welcome = await visitor(hub, "en", resume=chat["resume"], last_seq=0)
        try:
            assert welcome["chat_id"] == chat["chat_id"] and welcome["status"] == "queued"
            assert (await client.expect("message"))["text"] == chat["history"][0]
            assert (await client.expect("queued"))["position"] == chat["position"]
        finally:
            await client.close()


async def test_a_new_waiting_visitor_gets_an_estimate(upgraded):
    """Handled chats of the old data feed the ETA: a newcomer's place comes with a number."""
    hub, _ = upgraded
    cookie = await asyncio.to_thread(login_cookie, hub, "sam", MANIFEST["accounts"]["sam"]["password"])
    sam, _ = await agent(hub, None, "sam", ["en"], online=True, create=False, cookie=cookie)
    client, welcome = await visitor(hub, "en", name="Newcomer")
    try:
        assert welcome["status"] == "queued"
        queued = await client.expect("queued")
        assert queued["position"] == 3 and isinstance(queued["eta_s"], int)
    finally:
        await client.send(type="leave")
        await client.close()
        await sam.close()


def test_every_ticket_opens_by_reference_with_its_transcript(upgraded):
    """Each ticket of the old data opens by its reference, transcript and all."""
    hub, _ = upgraded
    cookie = supervisor(hub)
    for ticket in MANIFEST["tickets"].values():
        found = api(hub, f"/api/tickets/{ticket['ref']}", cookie)
        assert found["ref"] == ticket["ref"] and found["chat_id"] == ticket["chat_id"]
        if YOUNG:
            assert found["status"] == "open" and found["due_at"] > found["created_at"]
        else:
            assert found["status"] == "solved" and found["due_at"] is None
        assert [m["text"] for m in found["transcript"]] == ticket["transcript"]


def test_the_offline_chat_became_a_ticket_with_its_message(upgraded):
    """The offline chat's idle deadline passed during the upgrade: its message is a ticket now."""
    hub, smtp = upgraded
    offline = MANIFEST["chats"]["offline"]
    cookie = supervisor(hub)

    def ticket() -> dict | None:
        listed = api(hub, "/api/tickets?per_page=50", cookie)["tickets"]
        known = {t["ref"] for t in MANIFEST["tickets"].values()}
        for entry in listed:
            if entry["ref"] not in known:
                found = api(hub, f"/api/tickets/{entry['ref']}", cookie)
                if found["chat_id"] == offline["chat_id"]:
                    return found
        return None

    found = wait_until(ticket, 20, 0.2, "the offline chat's ticket")
    assert found["trigger"] == "offline" and [m["text"] for m in found["transcript"]] == offline["history"]
    wait_until(lambda: smtp.to("fritz@example.org"), 30, 0.1, "the confirmation to the offline visitor")


def test_the_mail_waiting_in_the_outbox_is_delivered(upgraded):
    """The mail the old desk could not send reaches the mail server once the new hub runs."""
    hub, smtp = upgraded
    ref = MANIFEST["tickets"]["pending_mail"]["ref"]
    mails = wait_until(lambda: [m for m in smtp.to("support@example.org") if ref in m.message["Subject"]],
                       30, 0.1, f"the pending mail of {ref}")
    assert len(mails) == 1


def test_canned_replies_are_kept(upgraded):
    """The team's canned replies are listed as before."""
    hub, _ = upgraded
    replies = api(hub, "/api/canned", supervisor(hub))["replies"]
    assert {r["shortcut"]: r["text"] for r in replies} == MANIFEST["canned"]


def test_statistics_and_ratings_are_kept(upgraded):
    """/metrics still counts the old desk's handled chats, tickets and its rating."""
    hub, _ = upgraded
    with urllib.request.urlopen(hub.base_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert float(lines["livechat_handle_seconds_count"]) >= 2
    assert float(lines['livechat_tickets_total{trigger="unresolved"}']) == 1
    assert float(lines["livechat_rating_score_count"]) == 1 and float(lines["livechat_rating_score_sum"]) == 5


def test_the_hub_recorded_the_current_schema_version(upgraded, tmp_path):
    """After the hub's start the data says it has the current layout."""
    hub, _ = upgraded
    done = livechat(hub.env["REDIS_URL"], tmp_path, "migrate", "--dry-run")
    assert f"schema version {schema.CURRENT}: up to date" in done.stdout
