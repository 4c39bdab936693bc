"""Mail coming in from a hosted mailbox (`livechat worker` with LIVECHAT_IMAP_URL), against a
real Dovecot: an unread mail becomes a ticket and is marked seen (or moved) only once it is
stored; a mail stored but still unread (a worker killed in between) is not stored twice."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from tests.support.clients import login_cookie, PASSWORD
from tests.support.mail import Dovecot
from tests.support.redis import redis_with_supervisor, RestartableRedis
from tests.support.servers import hub_env, HubProcess, LIVECHAT, TEST_CONFIG
from tests.support.waiting import wait_until


DESK, SORTED = "desk", "sorted"  # two mailboxes: one marked seen, one whose mail is moved
MAX_BYTES = 65536  # this module's [mail_in] max_bytes


class Desk:
    def __init__(self, dovecot: Dovecot, redis: RestartableRedis, hub: HubProcess, worker: HubProcess):
        self.dovecot, self.redis, self.hub, self.worker = dovecot, redis, hub, worker

    def tickets_of(self, email: str) -> list[dict]:
        cookie = login_cookie(self.hub, "boss", PASSWORD)
        request = urllib.request.Request(f"{self.hub.base_url}/api/tickets?per_page=200",
                                         headers={"Cookie": cookie, "Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return [t for t in json.loads(response.read())["tickets"] if t.get("email") == email]

    def ticket(self, ref: str) -> dict:
        cookie = login_cookie(self.hub, "boss", PASSWORD)
        request = urllib.request.Request(f"{self.hub.base_url}/api/tickets/{ref}",
                                         headers={"Cookie": cookie, "Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    root = tmp_path_factory.mktemp("mail-imap")
    config = root / "desk.toml"
    config.write_text(TEST_CONFIG + f"\n[mail_in]\nmax_bytes = {MAX_BYTES}\n")
    dovecot = Dovecot({DESK: "desk-secret", SORTED: "sorted-secret"}).start()
    redis = redis_with_supervisor(root / "redis")
    env = hub_env(redis.url, root / "hub", config)
    hub = HubProcess(env, root / "hub").start()
    # interval bounds how late a change can be seen if an IDLE notification is missed
    worker = HubProcess({**env, "LIVECHAT_IMAP_URL": dovecot.url(DESK, interval="5")}, root / "desk",
                        command="worker").start()
    sorter = HubProcess({**env, "LIVECHAT_IMAP_URL": dovecot.url(SORTED, done="Processed", interval="5")},
                        root / "sorted", command="worker").start()
    for process in (worker, sorter):
        wait_until(lambda: "IMAP: connected" in process.log_tail(100_000) or process.process.poll() is not None,
                   30, 0.05, "the worker to log in to dovecot")
        assert process.process.poll() is None, process.log_tail()
    yield Desk(dovecot, redis, hub, worker)
    for process in (worker, sorter, hub):
        process.terminate()
    redis.stop()
    dovecot.stop()


def new_mail(sender: str, subject: str, text: str = "My export fails with error 42.\n") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Customer <{sender}>"
    msg["To"] = "support@example.org"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="customer.example")
    msg.set_content(text)
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


async def test_an_unread_mail_in_the_mailbox_becomes_a_ticket_and_is_marked_seen(desk, lang):
    """A mail delivered to the polled mailbox opens an email ticket, and is then flagged \\Seen."""
    email = f"ada-{lang}@example.org"
    uid = await asyncio.to_thread(desk.dovecot.deliver, DESK, new_mail(email, "Export broken"))
    [opened] = await asyncio.to_thread(wait_until, lambda: desk.tickets_of(email), 30, 0.1, "the ticket")
    found = desk.ticket(opened["ref"])
    assert (found["channel"], found["subject"]) == ("email", "Export broken")
    assert found["transcript"][0]["text"] == "My export fails with error 42."
    await asyncio.to_thread(wait_until, lambda: "\\Seen" in desk.dovecot.flags(DESK, uid), 30, 0.1, "\\Seen")


async def test_while_redis_is_down_the_mail_stays_unread_and_arrives_later(desk, lang):
    """A mail that cannot be stored is not marked seen; once Redis is back it is stored, then marked."""
    email = f"bo-{lang}@example.org"
    failures = desk.worker.log_tail(1_000_000).count("IMAP: mail not stored (Redis")
    desk.redis.crash()
    try:
        uid = await asyncio.to_thread(desk.dovecot.deliver, DESK, new_mail(email, "Charged twice"))
        await asyncio.to_thread(
            wait_until, lambda: desk.worker.log_tail(1_000_000).count("IMAP: mail not stored (Redis") > failures,
            30, 0.1, "the worker to try and fail to store the mail")
        assert "\\Seen" not in desk.dovecot.flags(DESK, uid)
    finally:
        desk.redis.start()
    await asyncio.to_thread(wait_until, desk.hub.healthy, 15, 0.05, "the hub to see Redis again")
    await asyncio.to_thread(wait_until, lambda: desk.tickets_of(email), 60, 0.2, "the ticket after the outage")
    await asyncio.to_thread(wait_until, lambda: "\\Seen" in desk.dovecot.flags(DESK, uid), 30, 0.1, "\\Seen")


async def test_a_stored_mail_found_unread_again_is_not_stored_twice(desk, lang):
    """Crash between storing and marking, simulated: \\Seen cleared after storing; the mail is
    fetched again, recognised, marked seen again, and still makes one ticket."""
    email = f"cy-{lang}@example.org"
    uid = await asyncio.to_thread(desk.dovecot.deliver, DESK, new_mail(email, "Login loop"))
    await asyncio.to_thread(wait_until, lambda: "\\Seen" in desk.dovecot.flags(DESK, uid), 30, 0.1, "\\Seen")
    [opened] = desk.tickets_of(email)
    duplicates = desk.worker.log_tail(1_000_000).count(f"IMAP: mail {uid.decode()} duplicate")
    await asyncio.to_thread(desk.dovecot.unflag_seen, DESK, uid)
    await asyncio.to_thread(
        wait_until, lambda: desk.worker.log_tail(1_000_000).count(f"IMAP: mail {uid.decode()} duplicate") > duplicates,
        30, 0.1, "the worker to take the mail again")
    assert "\\Seen" in desk.dovecot.flags(DESK, uid)
    assert desk.tickets_of(email) == [opened]
    assert len(desk.ticket(opened["ref"])["transcript"]) == 1


async def test_a_mail_over_the_size_cap_stays_unread_and_holds_up_nothing(desk, lang):
    """A mail over [mail_in] max_bytes is left unread for a person, makes no ticket, and the mail behind it arrives."""
    big, small = f"eli-{lang}@example.org", f"fox-{lang}@example.org"
    huge = await asyncio.to_thread(desk.dovecot.deliver, DESK,
                                   new_mail(big, "Full log", ("log line " * 8 + "\n") * (MAX_BYTES // 50)))
    after = await asyncio.to_thread(desk.dovecot.deliver, DESK, new_mail(small, "Short question"))
    await asyncio.to_thread(wait_until, lambda: "\\Seen" in desk.dovecot.flags(DESK, after), 30, 0.1, "\\Seen")
    assert desk.tickets_of(small) and not desk.tickets_of(big)
    assert "\\Seen" not in desk.dovecot.flags(DESK, huge)


async def test_with_a_done_folder_the_stored_mail_is_moved_there(desk, lang):
    """`?done=Processed`: the mail, once stored, leaves the inbox for that folder, read."""
    email = f"dee-{lang}@example.org"
    uid = await asyncio.to_thread(desk.dovecot.deliver, SORTED, new_mail(email, "Invoice missing"))
    await asyncio.to_thread(wait_until, lambda: uid not in desk.dovecot.uids(SORTED, "INBOX"), 30, 0.1, "the move")
    assert desk.tickets_of(email)
    [moved] = desk.dovecot.uids(SORTED, "Processed")[-1:]
    assert "\\Seen" in desk.dovecot.flags(SORTED, moved, "Processed")


def test_a_worker_with_an_imap_url_without_password_refuses_to_start(tmp_path):
    """`livechat worker` with a LIVECHAT_IMAP_URL lacking credentials exits at once, saying so."""
    env = hub_env(None, tmp_path, LIVECHAT_IMAP_URL="imaps://imap.example.org/INBOX")
    done = subprocess.run([LIVECHAT, "worker"], env=env, capture_output=True, timeout=60)
    assert done.returncode != 0 and b"LIVECHAT_IMAP_URL needs a user and a password" in done.stderr
