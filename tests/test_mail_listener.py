"""Mail coming in over SMTP and LMTP (`livechat worker` with LIVECHAT_MAIL_IN): `250` only
once the mail is stored, `451` while Redis is down (the sender retries and nothing is lost),
`552` over the size cap, `550` for anyone but the support address, one LMTP answer per
recipient. Real parts: a redis-server that crashes and comes back, a hub, two workers, and
smtplib as the sending MTA."""

from __future__ import annotations

import asyncio
import json
import smtplib
import socket
import subprocess
import urllib.request
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from tests.support.clients import login_cookie, PASSWORD
from tests.support.desk import chat_ticket, ticket
from tests.support.mail import reply, SmtpServer
from tests.support.redis import redis_with_supervisor, RestartableRedis
from tests.support.servers import free_port, hub_env, HubProcess, LIVECHAT, TEST_CONFIG
from tests.support.waiting import wait_until


MAX_BYTES = 65536  # this module's [mail_in] max_bytes: the smallest the configuration allows


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class Desk:
    """A hub, an SMTP worker and an LMTP worker on a Redis of their own."""

    def __init__(self, redis: RestartableRedis, hub: HubProcess, smtp_port: int, lmtp_port: int, outbound: SmtpServer):
        self.redis, self.hub, self.smtp_port, self.lmtp_port, self.outbound = redis, hub, smtp_port, lmtp_port, outbound

    def tickets_of(self, email: str) -> list[dict]:
        cookie = login_cookie(self.hub, "boss", PASSWORD)
        request = urllib.request.Request(f"{self.hub.base_url}/api/tickets?per_page=200",
                                         headers={"Cookie": cookie, "Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return [t for t in json.loads(response.read())["tickets"] if t.get("email") == email]


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    root = tmp_path_factory.mktemp("mail-listener")
    config = root / "desk.toml"
    config.write_text(TEST_CONFIG + f"\n[mail_in]\nmax_bytes = {MAX_BYTES}\n")
    redis = redis_with_supervisor(root / "redis")
    outbound = SmtpServer().start()
    env = hub_env(redis.url, root / "hub", config, SMTP_URL=outbound.url + "?starttls=never")
    hub = HubProcess(env, root / "hub").start()
    smtp_port, lmtp_port = free_port(), free_port()
    workers = [
        HubProcess({**env, "LIVECHAT_MAIL_IN": f"smtp://127.0.0.1:{smtp_port}"}, root / "smtp", command="worker").start(),
        HubProcess({**env, "LIVECHAT_MAIL_IN": f"lmtp://127.0.0.1:{lmtp_port}"}, root / "lmtp", command="worker").start(),
    ]
    for worker, port in zip(workers, (smtp_port, lmtp_port)):
        wait_until(lambda: listening(port) or worker.process.poll() is not None, 30, 0.05, "the mail listener")
        assert worker.process.poll() is None, worker.log_tail()
    yield Desk(redis, hub, smtp_port, lmtp_port, outbound)
    for worker in workers:
        worker.terminate()
    hub.terminate()
    outbound.stop()
    redis.stop()


def new_mail(sender: str, subject: str, text: str = "Hello, I need help.\n") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@example.org"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="customer.example")
    msg.set_content(text)
    return msg


def wire(message: EmailMessage) -> bytes:
    """The message as an MTA sends it: CRLF line ends (smtplib's data() sends bytes as they are)."""
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def send(port: int, message: EmailMessage, to: str = "support@example.org") -> dict:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return client.send_message(message, to_addrs=[to])


async def test_a_reply_delivered_over_smtp_lands_in_its_ticket(desk, lang):
    """A customer's reply relayed over SMTP is accepted with 250 and stored in its ticket's thread."""
    ref, confirmation = await chat_ticket(desk.hub, desk.outbound, lang, f"ada-{lang}@example.org")
    answer = reply(confirmation, f"ada-{lang}@example.org", "Here is the screenshot.")
    assert await asyncio.to_thread(send, desk.smtp_port, answer) == {}
    thread = ticket(desk.hub, ref)["thread"]
    assert [(m["kind"], m["text"]) for m in thread] == [("mail_in", "Here is the screenshot.")]


async def test_redis_down_answers_451_and_the_retried_mail_arrives(desk, lang):
    """While Redis is down the mail gets 451 4.3.0; the sender's retry after it is back is stored."""
    email = f"fay-{lang}@example.org"
    message = new_mail(email, "Charged twice")
    desk.redis.crash()
    try:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            await asyncio.to_thread(send, desk.smtp_port, message)
        assert refused.value.smtp_code == 451 and refused.value.smtp_error.startswith(b"4.3.0")
    finally:
        desk.redis.start()

    def retried() -> bool:  # what an MTA does with a 4xx: try again later
        try:
            return send(desk.smtp_port, message) == {}
        except smtplib.SMTPDataError as exc:
            assert exc.smtp_code == 451
            return False

    await asyncio.to_thread(wait_until, retried, 30, 0.2, "the retried mail to be accepted")
    await asyncio.to_thread(wait_until, desk.hub.healthy, 15, 0.05, "the hub to see Redis again")
    [opened] = desk.tickets_of(email)
    assert ticket(desk.hub, opened["ref"])["transcript"][0]["text"] == "Hello, I need help."


async def test_a_mail_over_the_size_cap_is_refused_with_552(desk, lang):
    """A mail over [mail_in] max_bytes (sent without a SIZE declaration) gets 552 and is not stored."""
    email = f"gus-{lang}@example.org"
    message = new_mail(email, "Huge log", ("log line " * 8 + "\n") * (MAX_BYTES // 50))

    def deliver() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", desk.smtp_port, timeout=30) as client:
            client.ehlo()
            assert client.mail(email)[0] == 250
            assert client.rcpt("support@example.org")[0] == 250
            return client.data(wire(message))

    code, _ = await asyncio.to_thread(deliver)
    assert code == 552
    assert desk.tickets_of(email) == []


async def test_a_recipient_other_than_the_support_address_is_refused_with_550(desk):
    """RCPT for another address (another domain, or another mailbox of ours) gets 550: no relaying."""

    def rcpt(address: str) -> int:
        with smtplib.SMTP("127.0.0.1", desk.smtp_port, timeout=30) as client:
            client.ehlo()
            client.mail("someone@example.net")
            return client.rcpt(address)[0]

    codes = [await asyncio.to_thread(rcpt, a) for a in ("victim@elsewhere.example", "sales@example.org",
                                                        "support@example.org.evil.example")]
    assert codes == [550, 550, 550]


async def test_lmtp_answers_once_per_accepted_recipient_and_stores_the_mail_once(desk, lang):
    """Over LMTP, two support recipients (one plus-addressed) each get 250 after DATA; the mail is one ticket."""
    email = f"hal-{lang}@example.org"
    message = new_mail(email, "Two addresses")

    def deliver() -> list[int]:
        with smtplib.LMTP("127.0.0.1", desk.lmtp_port, timeout=30) as client:
            client.ehlo()  # LHLO
            client.mail(email)
            codes = [client.rcpt(a)[0] for a in ("support@example.org", "support+billing@example.org",
                                                 "stranger@elsewhere.example")]
            codes.append(client.data(wire(message))[0])
            codes.append(client.getreply()[0])  # the second accepted recipient's answer
            return codes

    assert await asyncio.to_thread(deliver) == [250, 250, 550, 250, 250]
    assert len(desk.tickets_of(email)) == 1


def test_a_worker_with_a_wrong_mail_in_url_refuses_to_start(tmp_path):
    """`livechat worker` with a LIVECHAT_MAIL_IN that is neither smtp:// nor lmtp:// exits at once, saying so."""
    env = hub_env(None, tmp_path, LIVECHAT_MAIL_IN="http://127.0.0.1:2525")
    done = subprocess.run([LIVECHAT, "worker"], env=env, capture_output=True, timeout=60)
    assert done.returncode != 0 and b"LIVECHAT_MAIL_IN must start with smtp:// or lmtp://" in done.stderr
