"""A ticket desk for the tests: a `livechat serve` on a database of its own whose mail goes to
a real SMTP server, with agents and a supervisor; driven over HTTP, `livechat mail-in` and a
visitor's socket, read back through the ticket API."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import make_msgid

from redis.asyncio import Redis

from tests.support.clients import PASSWORD, create_agent, login_cookie, visitor
from tests.support.mail import SmtpServer
from tests.support.redis import db_url
from tests.support.servers import LIVECHAT, HubProcess, free_port, hub_env
from tests.support.waiting import wait_until

# A link to a ticket's private page, as the mails carry it.
LINK = re.compile(r"http://127\.0\.0\.1:\d+/t/LC-[A-Z0-9]{6}/[A-Za-z0-9_-]{22}")


class Desk:
    """A hub on its own database with a real SMTP server; an agent and a supervisor."""

    def __init__(self, redis_url: str, root, config: str, db: int, public: bool = False):
        self.smtp = SmtpServer().start()
        self.url = db_url(redis_url, db)
        path = root / "desk.toml"
        path.write_text(config)

        async def setup() -> None:
            client = Redis.from_url(self.url)
            await client.flushdb()
            await create_agent(client, "sam", ["en"], name="Sam")
            await create_agent(client, "kim", ["en"], name="Kim")
            await create_agent(client, "boss", ["en"], role="supervisor")
            await client.aclose()

        asyncio.run(setup())
        port = free_port()
        extra = {"LIVECHAT_PUBLIC_URL": f"http://127.0.0.1:{port}"} if public else {}  # mails link the private page
        self.env = hub_env(self.url, root / "hub", path, SMTP_URL=self.smtp.url + "?starttls=never", **extra)
        self.hub = HubProcess(self.env, root / "hub", port=port).start()
        self.cookies: dict[str, tuple[str, str]] = {}

    def stop(self) -> None:
        self.hub.terminate()
        self.smtp.stop()

    def session(self, user: str) -> tuple[str, str]:
        if user not in self.cookies:
            cookie = login_cookie(self.hub, user, PASSWORD)
            page = self.call("GET", "/agent", cookie=cookie, raw=True)
            self.cookies[user] = (cookie, page.split('data-csrf="', 1)[1].split('"', 1)[0])
        return self.cookies[user]

    def call(self, method: str, path: str, body: dict | None = None, user: str | None = None,
             cookie: str | None = None, raw: bool = False):
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if user:
            cookie, token = self.session(user)
            headers["X-CSRF-Token"] = token
        if cookie:
            headers["Cookie"] = cookie
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.hub.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read().decode()
                return text if raw else (response.status, json.loads(text))
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def mail_in(self, message: EmailMessage, config_path=None) -> list[str]:
        env = self.env if config_path is None else {**self.env, "LIVECHAT_CONFIG": str(config_path)}
        done = subprocess.run([LIVECHAT, "mail-in"], env=env, input=message.as_bytes(), capture_output=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.decode().split()

    def new_ticket(self, sender: str, text: str = "My backup fails every night.") -> str:
        msg = EmailMessage()
        msg["From"] = f"Customer <{sender}>"
        msg["To"] = "support@example.org"
        msg["Subject"] = "Backup fails"
        msg["Message-ID"] = make_msgid(domain="customer.example")
        msg.set_content(text + "\n")
        outcome, ref = self.mail_in(msg)
        assert outcome == "opened"
        return ref

    def mails_to(self, address: str, count: int) -> list[EmailMessage]:
        found = wait_until(lambda: len(self.smtp.to(address)) >= count and self.smtp.to(address), 30, 0.05,
                           f"{count} mails to {address}")
        return [m.message for m in found]

    def ticket(self, ref: str) -> dict:
        status, body = self.call("GET", f"/api/tickets/{ref}", user="sam")
        assert status == 200, body
        return body


def ticket(hub: HubProcess, ref: str) -> dict:
    cookie = login_cookie(hub, "boss", PASSWORD)
    request = urllib.request.Request(f"{hub.base_url}/api/tickets/{ref}",
                                     headers={"Cookie": cookie, "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


async def chat_ticket(hub: HubProcess, smtp: SmtpServer, lang: str, email: str) -> tuple[str, EmailMessage]:
    """A visitor nobody can serve leaves a message: a ticket and its confirmation mail."""
    client, welcome = await visitor(hub, lang, name="Ada", email=email)
    assert welcome["status"] == "offline"
    await client.send(type="message", text="My export fails with error 42.", client_id="m1")
    await client.expect("message", text="My export fails with error 42.")
    await client.send(type="leave")
    ref = (await client.expect("closed"))["ref"]
    await client.close()
    confirmation = await asyncio.to_thread(wait_until, lambda: smtp.to(email), 30, 0.05, "the confirmation")
    return ref, confirmation[0].message
