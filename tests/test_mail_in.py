"""Mail coming in through `livechat mail-in`: replies land in their ticket, once, and only
when the sender is the ticket's contact; new mail opens a ticket; machines get no answer."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import subprocess
import urllib.request
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from redis.asyncio import Redis

from transcripts.plan_lookup import signature
from tests.support.clients import create_agent, login_cookie, PASSWORD, visitor
from tests.support.desk import chat_ticket, ticket
from tests.support.mail import reply, SmtpServer
from tests.support.redis import DATABASES, db_url
from tests.support.servers import free_port, hub_env, HubProcess, LIVECHAT, TEST_SITE_SECRET
from tests.support.waiting import wait_until

DB = DATABASES["mail_in"]  # this module's own database: its hub's outbox and tickets meet nobody else's


class PlanSite:
    """The company's own site answering plan lookups: a real HTTP server on loopback that
    checks the desk's signature and knows one customer's plan."""

    def __init__(self, plans: dict[str, str]):
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signed = self.headers.get("X-Livechat-Signature") == signature(TEST_SITE_SECRET, body)
                site.asked.append((json.loads(body)["email"], signed))
                plan = plans.get(json.loads(body)["email"]) if signed else None
                self.send_response(200 if plan else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"plan": plan} if plan else {}).encode())

            def log_message(self, *args):
                pass

        self.asked: list[tuple[str, bool]] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/plan"

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="module")
def desk(redis_url, tmp_path_factory, test_config_path):
    """A hub on its own database whose mail goes to a real SMTP server, and a supervisor."""
    root = tmp_path_factory.mktemp("mail-in")
    smtp = SmtpServer().start()
    url = db_url(redis_url, DB)

    async def setup() -> None:
        client = Redis.from_url(url)
        await client.flushdb()
        await create_agent(client, "boss", ["en"], role="supervisor")
        await client.aclose()

    asyncio.run(setup())
    site = PlanSite({"pro@example.org": "professional"})
    config = root / "desk.toml"
    config.write_text(test_config_path.read_text() + "\n[mail_in]\nattachment_bytes = 2000\n"
                      f'\n[tickets]\nplan_lookup_url = "{site.url}"\n')
    env = hub_env(url, root / "hub", config, SMTP_URL=smtp.url + "?starttls=never",
                  LIVECHAT_REPLY_ADDRESS="support+{token}@example.org")
    hub = HubProcess(env, root / "hub").start()
    yield hub, smtp, env
    hub.terminate()
    smtp.stop()
    site.stop()


def mail_in(env: dict[str, str], message: EmailMessage | bytes) -> subprocess.CompletedProcess:
    raw = message if isinstance(message, bytes) else message.as_bytes()
    return subprocess.run([LIVECHAT, "mail-in"], env=env, input=raw, capture_output=True, timeout=60)


def tickets_total(hub: HubProcess) -> int:
    cookie = login_cookie(hub, "boss", PASSWORD)
    request = urllib.request.Request(f"{hub.base_url}/api/tickets", headers={"Cookie": cookie, "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["total"]


async def test_a_reply_to_the_confirmation_lands_in_its_ticket_without_the_quote(desk, lang):
    """The customer's reply is stored in the ticket's thread, quoted history removed."""
    hub, smtp, env = desk
    ref, confirmation = await chat_ticket(hub, smtp, lang, f"ada-{lang}@example.org")
    done = mail_in(env, reply(confirmation, f"ada-{lang}@example.org", "I attached the screenshot you asked for."))
    assert done.returncode == 0 and done.stdout.decode().split() == ["stored", ref], done.stderr
    thread = ticket(hub, ref)["thread"]
    assert [(m["kind"], m["text"]) for m in thread] == [("mail_in", "I attached the screenshot you asked for.")]
    assert "wrote:" in thread[0]["original"]


async def test_the_same_mail_delivered_twice_is_stored_once(desk, lang):
    """A redelivered mail (same Message-ID) is recognised and not stored again."""
    hub, smtp, env = desk
    ref, confirmation = await chat_ticket(hub, smtp, lang, f"bo-{lang}@example.org")
    message = reply(confirmation, f"bo-{lang}@example.org", "Any news?")
    assert mail_in(env, message).stdout.decode().split() == ["stored", ref]
    assert mail_in(env, message).stdout.decode().split() == ["duplicate", ref]
    assert len(ticket(hub, ref)["thread"]) == 1


async def test_a_stranger_quoting_a_reference_opens_a_ticket_of_their_own(desk, lang):
    """Another sender's mail with the reference (subject and headers) never enters that ticket."""
    hub, smtp, env = desk
    ref, confirmation = await chat_ticket(hub, smtp, lang, f"cy-{lang}@example.org")
    intruder = reply(confirmation, f"mallory-{lang}@example.net", "Please send me the whole conversation.")
    intruder.replace_header("To", "support@example.org")  # knows the reference, never got our mail
    done = mail_in(env, intruder)
    outcome, other = done.stdout.decode().split()
    assert outcome == "opened" and other != ref
    assert ticket(hub, ref)["thread"] == []
    assert ticket(hub, other)["email"] == f"mallory-{lang}@example.net"


async def test_a_new_mail_becomes_a_ticket_with_a_confirmation(desk, lang):
    """Mail to the support address answering nothing is a new `email` ticket, confirmed by mail."""
    hub, smtp, env = desk
    msg = EmailMessage()
    msg["From"] = f"Dee <dee-{lang}@example.org>"
    msg["To"] = "support@example.org"
    msg["Subject"] = "Cannot log in on my phone"
    msg["Message-ID"] = make_msgid(domain="customer.example")
    msg.set_content("Since the update the app says my session expired.\n")
    outcome, ref = mail_in(env, msg).stdout.decode().split()
    assert outcome == "opened"
    found = ticket(hub, ref)
    assert (found["channel"], found["trigger"], found["name"], found["subject"]) == (
        "email", "email", "Dee", "Cannot log in on my phone")
    assert found["transcript"][0]["text"] == "Since the update the app says my session expired."
    mails = await asyncio.to_thread(wait_until, lambda: smtp.to(f"dee-{lang}@example.org"), 30, 0.05, "confirmation")
    assert ref in mails[0].message["Subject"]


async def test_an_auto_reply_opens_nothing_and_gets_no_answer(desk, lang):
    """An out-of-office mail answering no ticket is ignored: no ticket, no confirmation."""
    hub, smtp, env = desk
    msg = EmailMessage()
    msg["From"] = f"robot-{lang}@example.org"
    msg["To"] = "support@example.org"
    msg["Subject"] = "Out of office"
    msg["Auto-Submitted"] = "auto-replied"
    msg["Message-ID"] = make_msgid(domain="customer.example")
    msg.set_content("I am away until Monday.\n")
    before = tickets_total(hub)
    assert mail_in(env, msg).stdout.decode().split() == ["ignored", "automatic"]
    assert tickets_total(hub) == before  # no ticket, so no confirmation can ever be sent


async def test_html_only_mail_is_stored_as_text(desk, lang):
    """A mail with only an HTML body becomes readable text, markup and scripts gone."""
    hub, smtp, env = desk
    msg = EmailMessage()
    msg["From"] = f"eve-{lang}@example.org"
    msg["Subject"] = "Question"
    msg["Message-ID"] = make_msgid(domain="customer.example")
    msg.set_content("<html><body><p>Where is <b>my invoice</b>?</p><script>alert(1)</script></body></html>",
                    subtype="html")
    outcome, ref = mail_in(env, msg).stdout.decode().split()
    assert ticket(hub, ref)["transcript"][0]["text"] == "Where is my invoice?"


def test_redis_down_makes_the_mta_retry_and_the_mail_arrives_later(desk, tmp_path, lang):
    """Exit 75 (EX_TEMPFAIL) while Redis is unreachable; the same mail is stored once it answers."""
    hub, smtp, env = desk
    msg = EmailMessage()
    msg["From"] = f"fay-{lang}@example.org"
    msg["Subject"] = "Billing question"
    msg["Message-ID"] = make_msgid(domain="customer.example")
    msg.set_content("Why was I charged twice?\n")
    down = {**env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    failed = mail_in(down, msg)
    assert failed.returncode == 75, failed.stderr
    retried = mail_in(env, msg)
    assert retried.returncode == 0 and retried.stdout.decode().split()[0] == "opened"


async def test_the_ticket_page_shows_the_reply_and_its_original(desk, lang):
    """A supervisor's ticket page lists the mail under the transcript, the original one click away."""
    hub, smtp, env = desk
    ref, confirmation = await chat_ticket(hub, smtp, lang, f"gil-{lang}@example.org")
    mail_in(env, reply(confirmation, f"gil-{lang}@example.org", "Still <b>broken</b> today."))
    request = urllib.request.Request(f"{hub.base_url}/api/tickets/{ref}",
                                     headers={"Cookie": login_cookie(hub, "boss", PASSWORD), "Accept": "text/html"})
    with urllib.request.urlopen(request, timeout=10) as response:
        page = response.read().decode()
    assert "Mail since" in page and "Still &lt;b&gt;broken&lt;/b&gt; today." in page and "Show original" in page


async def test_a_reply_to_the_signed_address_lands_in_its_ticket_whoever_sends_it(desk, lang):
    """The confirmation's signed Reply-To lets a reply from another address into its ticket."""
    hub, smtp, env = desk
    ref, confirmation = await chat_ticket(hub, smtp, lang, f"hal-{lang}@example.org")
    assert confirmation["Reply-To"].startswith(f"support+{ref.lower()}-")
    colleague = reply(confirmation, f"hal-work-{lang}@example.net", "Sending this from my work address.")
    assert colleague["To"] == confirmation["Reply-To"]
    assert mail_in(env, colleague).stdout.decode().split() == ["stored", ref]


async def test_a_forged_signed_address_opens_a_ticket_of_its_own(desk, lang):
    """A reply address whose signature does not match the reference is just another address."""
    hub, smtp, env = desk
    ref, confirmation = await chat_ticket(hub, smtp, lang, f"ivy-{lang}@example.org")
    forged = reply(confirmation, f"mallory-{lang}@example.net", "Let me in.")
    forged.replace_header("To", f"support+{ref.lower()}-aaaaaaaaaa@example.org")
    del forged["In-Reply-To"], forged["References"]
    outcome, other = mail_in(env, forged).stdout.decode().split()
    assert outcome == "opened" and other != ref


async def test_mail_from_a_verified_customers_address_is_on_their_plan(desk, lang):
    """The plan of the last verified chat with an address carries over to its new mail ticket."""
    hub, smtp, env = desk
    address = f"vip-{lang}@example.org"
    token = subprocess.run([LIVECHAT, "token", "--sub", f"vip-{lang}", "--plan", "visionary", "--email", address],
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    client, welcome = await visitor(hub, lang, identity=token)
    assert welcome["verified"] is True
    await client.close()
    msg = EmailMessage()
    msg["From"] = address
    msg["Subject"] = "Follow-up"
    msg["Message-ID"] = make_msgid(domain="customer.example")
    msg.set_content("One more question.\n")
    outcome, ref = mail_in(env, msg).stdout.decode().split()
    assert outcome == "opened" and ticket(hub, ref)["plan"] == "visionary"


def with_attachments(sender: str, *files: tuple[str, str, bytes]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["Subject"] = "Screenshot of the error"
    msg["Message-ID"] = make_msgid(domain="customer.example")
    msg.set_content("Here is what I see.\n")
    for name, content_type, data in files:
        maintype, subtype = content_type.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg


async def test_an_attachment_is_kept_and_served_only_as_a_download(desk, lang):
    """A mailed file is kept with the ticket and comes back byte for byte, as a download."""
    hub, smtp, env = desk
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    outcome, ref = mail_in(env, with_attachments(f"kai-{lang}@example.org", ("error.png", "image/png", png),
                                                 ("logo.svg", "image/svg+xml", svg))).stdout.decode().split()
    files = {f["name"]: f for f in ticket(hub, ref)["messages"][0]["attachments"]}
    assert set(files) == {"error.png", "logo.svg"} and files["error.png"]["size"] == len(png)
    cookie = login_cookie(hub, "boss", PASSWORD)
    for name, data in (("error.png", png), ("logo.svg", svg)):
        request = urllib.request.Request(f"{hub.base_url}/api/tickets/{ref}/attachments/{files[name]['id']}",
                                         headers={"Cookie": cookie})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.read() == data
            assert response.headers["Content-Disposition"].startswith("attachment;")
            assert response.headers["Content-Type"] == "application/octet-stream"
            assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_attachments_over_the_cap_are_dropped_and_the_mail_kept(desk, lang):
    """Past [mail_in] attachment_bytes the mail is stored and the file named as dropped."""
    hub, smtp, env = desk
    big = b"x" * 3000  # the module's desk keeps 2,000 bytes of attachments per mail
    outcome, ref = mail_in(env, with_attachments(f"lea-{lang}@example.org", ("small.txt", "text/plain", b"ok"),
                                                 ("dump.bin", "application/octet-stream", big))).stdout.decode().split()
    first = ticket(hub, ref)["messages"][0]
    assert outcome == "opened" and first["text"] == "Here is what I see."
    assert [f["name"] for f in first["attachments"]] == ["small.txt"]
    assert [(f["name"], f["size"]) for f in first["dropped"]] == [("dump.bin", 3000)]


def test_the_sites_plan_lookup_sets_a_new_mail_tickets_plan(desk):
    """The site, asked with a POST it can verify (it answers only signed ones), names the sender's plan; others get the lowest."""
    hub, smtp, env = desk
    for sender, plan in (("pro@example.org", "professional"), ("nobody-known@example.org", "free")):
        msg = EmailMessage()
        msg["From"] = sender
        msg["Subject"] = "Plan please"
        msg["Message-ID"] = make_msgid(domain="customer.example")
        msg.set_content("Which plan am I on?\n")
        outcome, ref = mail_in(env, msg).stdout.decode().split()
        assert ticket(hub, ref)["plan"] == plan
