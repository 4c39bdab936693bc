"""What a ticket's mail may cost and carry, end to end (a real hub, Redis and SMTP server):
a long chat neither stalls the hub nor makes huge mails, nobody can use the desk to mail a
stranger words of their choosing, and a mail the server refuses for good is not retried."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
import urllib.request

import pytest
from redis.asyncio import Redis
from tests.support.clients import create_agent, login_cookie, token, visitor
from tests.support.mail import RecordingHandler, SmtpServer, SUPPORT
from tests.support.redis import DATABASES, db_url
from tests.support.servers import hub_env, HubProcess, LIVECHAT
from tests.support.waiting import eventually


DB = DATABASES["tickets_mail_guards"]
CONFIG = """
[plans.free]
max_wait = 600
hours = "24/7"

[timing]
agent_grace = 30
visitor_grace = 30
offline_idle = 600
heartbeat = 0.2

[limits]
visitor_frames_per_second = 1000  # a long chat is typed in seconds here
visitor_frame_burst = 1000
confirmations_per_address_per_day = 2
visitor_bytes_per_chat = 0        # the long chats here are the point: no per-chat cap
"""
HOSTILE = "<\"'&" * 1000  # 4,000 characters, each escaped to 4-6 bytes in HTML
EMOJI = "\U0001F600" * 4000  # 4,000 characters of 4 bytes each: the heaviest message to encode


class BouncingHandler(RecordingHandler):
    """Refuses every recipient whose address starts with "bounce" (550, "no such user") and
    counts the refusals."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[str] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address.startswith("bounce"):
            with self.lock:
                self.refused.append(address)
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture(scope="module")
def smtp():
    server = SmtpServer(handler=BouncingHandler()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def guarded_hub(redis_url, smtp, tmp_path_factory):
    data = tmp_path_factory.mktemp("mail-guards-hub")
    config = data / "livechat.toml"
    config.write_text(CONFIG)
    process = HubProcess(hub_env(db_url(redis_url, DB), data, config, SMTP_URL=smtp.url,
                                 LIVECHAT_SUPPORT_ADDRESS=SUPPORT), data).start()
    yield process
    process.terminate()


@pytest.fixture
async def grds(redis_url):
    client = Redis.from_url(db_url(redis_url, DB))
    yield client
    await client.aclose()


async def long_offline_chat(hub, lang: str, email: str, text: str, count: int = 300, **hello):
    """An offline chat (nobody serves ``lang``) in which the visitor wrote ``count`` long messages."""
    client, welcome = await visitor(hub, lang, name="Long", email=email, **hello)
    assert welcome["status"] == "offline"
    for i in range(count):
        await client.send(type="message", text=text, client_id=str(i))
    await client.expect("message", timeout=60, client_id=str(count - 1))
    return client, welcome


def mails_of(smtp: SmtpServer, ref: str):
    return [m for m in smtp.messages if ref in str(m.message["Subject"])]


class HealthProbe:
    """Asks /healthz over and over from a thread and keeps the slowest answer."""

    def __init__(self, hub):
        self.url = hub.base_url + "/healthz"
        self.slowest = 0.0
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            with urllib.request.urlopen(self.url, timeout=30) as response:
                response.read()
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.count += 1
            self._stop.wait(0.02)

    def __enter__(self) -> "HealthProbe":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(35)


async def test_healthz_keeps_answering_while_a_300_message_ticket_is_made(guarded_hub, smtp, lang):
    """/healthz answers promptly while a 300-message chat becomes a ticket and its mails go out."""
    client, _ = await long_offline_chat(guarded_hub, lang, f"long-{lang}@example.org", EMOJI)
    with HealthProbe(guarded_hub) as probe:
        await eventually(lambda: probe.count >= 3, message="the probe running")
        await client.send(type="leave")
        ref = (await client.expect("ticket", timeout=60))["ref"]
        await eventually(lambda: len(mails_of(smtp, ref)) == 2, 60, "both mails delivered")
    print(f"slowest /healthz while the ticket was made: {probe.slowest * 1000:.0f} ms over {probe.count} probes")
    assert probe.slowest < 1.0  # generous: a hub stalled past agent_grace (30 s by default) loses its agents


async def test_mails_of_a_300_message_ticket_stay_small_and_point_to_the_ticket(guarded_hub, smtp, lang):
    """Each mail of a long chat's ticket stays under 512 KB and says how many earlier messages the ticket keeps."""
    email = f"small-{lang}@example.org"  # verified, so that its confirmation carries the transcript too
    client, _ = await long_offline_chat(guarded_hub, lang, email, HOSTILE, identity=token("free", sub=email, email=email))
    await client.send(type="leave")
    ref = (await client.expect("ticket", timeout=60))["ref"]
    await eventually(lambda: len(mails_of(smtp, ref)) == 2, 60, "both mails delivered")
    for received in mails_of(smtp, ref):
        size = len(received.message.as_bytes())
        print(f"{received.recipients[0]}: {size} bytes")
        assert size < 512 * 1024
        text = received.message.get_body(("plain",)).get_content()
        assert "earlier messages" in text and HOSTILE in text


async def offline_ticket(hub, lang: str, text: str = "please call me", **hello) -> tuple[str, object]:
    """An offline chat with one message, left by the visitor: its ticket reference and the client."""
    client, _ = await visitor(hub, lang, **hello)
    await client.send(type="message", text=text, client_id="1")
    await client.expect("message", client_id="1")
    await client.send(type="leave")
    return (await client.expect("ticket"))["ref"], client


async def test_a_ticket_choice_nobody_offered_is_refused(guarded_hub, lang):
    """wait_or_ticket without the hub's offer gets not_allowed and makes no ticket."""
    client, _ = await visitor(guarded_hub, lang, email=f"victim-{lang}@example.org")
    await client.send(type="wait_or_ticket", choice="ticket")
    assert (await client.expect("error"))["code"] == "not_allowed"
    await client.send(type="message", text="still here", client_id="after")
    await client.expect("message", client_id="after")
    assert not [f for f in client.received if f.get("type") in ("ticket", "closed")]


async def test_confirmation_to_an_unverified_address_repeats_nothing_the_visitor_wrote(guarded_hub, smtp, lang):
    """To an unverified address: bare To, a neutral greeting, neither the typed name nor the messages."""
    email = f"stranger-{lang}@example.org"
    ref, _ = await offline_ticket(guarded_hub, lang, "Log in at evil.example now",
                                  name="Your account is suspended - visit evil.example", email=email)
    await eventually(lambda: smtp.to(email), 15, "the confirmation")
    [received] = smtp.to(email)
    assert str(received.message["To"]) == email
    raw = received.message.as_string()
    assert "evil.example" not in raw and ref in raw
    assert received.message.get_body(("plain",)).get_content().splitlines()[0] == "Hello,"


async def test_one_address_gets_a_bounded_number_of_confirmations_a_day(guarded_hub, smtp, lang):
    """Past confirmations_per_address_per_day the ticket is still made, the visitor gets limit_reached, no mail."""
    email = f"flooded-{lang}@example.org"
    refs = []
    for _ in range(3):
        ref, client = await offline_ticket(guarded_hub, lang, email=email)
        refs.append(ref)
    assert (await client.expect("error"))["code"] == "limit_reached"
    await eventually(lambda: len([m for m in smtp.to(SUPPORT) if any(r in str(m.message["Subject"]) for r in refs)]) == 3,
                     15, "the inbox copy of every ticket")
    assert sorted(r for m in smtp.to(email) for r in refs if r in str(m.message["Subject"])) == sorted(refs[:2])


def outbox_listing(hub) -> str:
    """`livechat transcript outbox` run against the hub's Redis, as an operator would."""
    result = subprocess.run([LIVECHAT, "transcript", "outbox"], env=hub.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_a_mail_refused_for_good_is_listed_as_failed_and_not_retried(guarded_hub, smtp, lang):
    """A 550 for the visitor's address ends that mail: `transcript outbox` lists it as failed, not queued."""
    address = f"bounce-{lang}@example.org"
    ref, _ = await offline_ticket(guarded_hub, lang, email=address)
    await eventually(lambda: address in smtp.handler.refused, 15, "the refusal")
    listing = await eventually(lambda: (lambda out: out if "failed for good" in out else None)(outbox_listing(guarded_hub)),
                               20, "the mail listed as failed", interval=0.3)
    queued, _, failed = listing.partition("failed for good")
    assert f"{ref}.visitor" in failed and "550" in failed and f"{ref}.visitor" not in queued
    assert smtp.handler.refused.count(address) == 1


async def test_the_supervisor_view_shows_mail_refused_for_good(guarded_hub, grds, smtp, lang):
    """GET /api/queue counts failed mail and names the newest with its error."""
    address = f"bounce-sv-{lang}@example.org"
    ref, _ = await offline_ticket(guarded_hub, lang, email=address)
    await create_agent(grds, f"sup-{lang}", [], role="supervisor")
    cookie = await asyncio.to_thread(login_cookie, guarded_hub, f"sup-{lang}")

    def snapshot() -> dict:
        request = urllib.request.Request(guarded_hub.base_url + "/api/queue", headers={"Cookie": cookie})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    async def failed_mail():
        shown = await asyncio.to_thread(snapshot)
        return next((m for m in shown.get("mail_failed_recent", []) if m["id"] == f"{ref}.visitor"), None)

    mail = await eventually(failed_mail, 20, "the failed mail in the snapshot", interval=0.2)
    assert mail["ref"] == ref and "550" in mail["error"]
