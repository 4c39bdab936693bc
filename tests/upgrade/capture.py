"""Capture a Redis dump of a small, realistic desk made by the livechat of the moment.

Run it at the commit whose layout the dump is to freeze (see README.md beside it):

    .venv/bin/python -m tests.upgrade.capture tests/upgrade/v1

Everything is made the way production makes it: accounts with `livechat agent add`,
canned replies through the supervisor API, chats through real visitor and agent sockets,
tickets by closing chats or leaving them, mail through a real SMTP server (aiosmtpd) that is
stopped before the last ticket, so that its mail is still waiting in the outbox. At the end
Redis writes an RDB file (SAVE) while every socket is still open, like a desk that is
upgraded in the middle of a working day; `manifest.json` records what a test may check.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from redis.asyncio import Redis

from chat.embedded_redis import EmbeddedRedis
from tests.support.clients import Client, login_cookie, visitor
from tests.support.mail import SmtpServer
from tests.support.servers import hub_env, HubProcess, LIVECHAT, TEST_SITE_SECRET
from tests.support.waiting import eventually

DESK = """
[plans.free]
head_start = 0
max_wait = 60
hours = "24/7"

[plans.plus]
head_start = 120
max_wait = 3600
hours = "24/7"

[plans.professional]
head_start = 300
max_wait = 3600
hours = "24/7"

[plans.visionary]
head_start = 900
max_wait = 3600
hours = "24/7"

[timing]
agent_grace = 600
visitor_grace = 600
offline_idle = 60
heartbeat = 0.5
"""

ACCOUNTS = {
    # username: (password, role, name, langs, topics, max_chats)
    "sam": ("sam-password-2026", "agent", "Sam", "en,fr", "", 1),
    "rosa": ("rosa-password-2026", "agent", "Rosa", "de", "billing", 2),
    "alex": ("alex-password-2026", "supervisor", "Alex", "en", "", 3),
}
CANNED = {"hello": "Hello! How can I help you today?", "refund": "Refunds take 5 to 7 working days."}


def cli(env: dict[str, str], *args: str, stdin: str = "") -> str:
    done = subprocess.run([LIVECHAT, *args], env=env, input=stdin, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def request(base: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as response:
        return response.status, response.read().decode()


async def agent_socket(hub: HubProcess, cookie: str) -> Client:
    import websockets

    ws = await websockets.connect(hub.ws_url + "/ws/agent", additional_headers={"Cookie": cookie}, ping_interval=None)
    client = Client(ws)
    await client.expect("welcome")
    await client.send(type="status", status="online")
    await client.expect("status", status="online")
    return client


async def capture(out: Path) -> None:

    work = Path(tempfile.mkdtemp(prefix="lc-capture-"))
    redis_server = EmbeddedRedis(work / "redis", fsync="everysec")
    redis_url = redis_server.start()
    smtp = SmtpServer().start()
    desk = work / "desk.toml"
    desk.write_text(DESK)
    env = hub_env(redis_url, work / "hub", desk, SMTP_URL=smtp.url + "?starttls=never")
    hub = HubProcess(env, work / "hub").start()
    rds = Redis.from_url(redis_url, decode_responses=True)
    manifest: dict = {"site_secret": TEST_SITE_SECRET, "accounts": {}, "canned": CANNED, "chats": {}, "tickets": {}}
    sockets: list[Client] = []
    try:
        for username, (password, role, name, langs, topics, max_chats) in ACCOUNTS.items():
            cli(env, "agent", "add", username, "--role", role, "--name", name, "--langs", langs,
                "--topics", topics, "--max-chats", str(max_chats), stdin=password + "\n")
            manifest["accounts"][username] = {"password": password, "role": role, "name": name}

        boss = await asyncio.to_thread(login_cookie, hub, "alex", ACCOUNTS["alex"][0])
        _, page = request(hub.base_url, "GET", "/supervisor", headers={"Cookie": boss})
        csrf = page.split('data-csrf="', 1)[1].split('"', 1)[0]
        for shortcut, text in CANNED.items():
            request(hub.base_url, "PUT", f"/api/canned/{shortcut}", json.dumps({"text": text}).encode(),
                    {"Cookie": boss, "X-CSRF-Token": csrf, "Content-Type": "application/json"})

        sam = await agent_socket(hub, await asyncio.to_thread(login_cookie, hub, "sam", ACCOUNTS["sam"][0]))
        sockets.append(sam)

        async def served_chat(name: str, hello: dict, lines: list[tuple[str, str]]) -> tuple[Client, dict]:
            client, welcome = await visitor(hub, "en", name=name, **hello)
            sockets.append(client)
            chat_id = welcome["chat_id"]
            await sam.expect("assigned", chat_id=chat_id, timeout=15)
            for i, (who, text) in enumerate(lines):
                if who == "visitor":
                    await client.send(type="message", text=text, client_id=f"{name}-{i}")
                else:
                    await sam.send(type="message", chat_id=chat_id, text=text, client_id=f"sam-{name}-{i}")
                await client.expect("message", text=text)
            return client, welcome

        # 1. A chat served, resolved and rated (stats: handled, handling time, rating).
        plus = cli(env, "token", "--sub", "cust-ada", "--plan", "plus", "--email", "ada@example.org",
                   "--name", "Ada", "--ttl", "86400")
        ada, welcome = await served_chat("Ada", {"identity": plus}, [
            ("visitor", "How do I export my contacts?"), ("agent", "Settings, then Export."),
            ("visitor", "Found it, thanks!")])
        await sam.send(type="close", chat_id=welcome["chat_id"], resolution="resolved")
        await ada.expect("closed")
        await ada.send(type="rate", score=5, comment="Quick and kind")
        await ada.expect("rated")
        manifest["chats"]["rated"] = {"chat_id": welcome["chat_id"], "score": 5}

        # 2. A chat closed unresolved: a ticket whose two mails are delivered.
        bea, welcome = await served_chat("Bea", {"email": "bea@example.org"}, [
            ("visitor", "My invoice shows the wrong VAT number."), ("agent", "I will ask billing and mail you.")])
        await sam.send(type="close", chat_id=welcome["chat_id"], resolution="unresolved")
        closed = await bea.expect("closed")
        ref = closed.get("ref") or (await bea.expect("ticket"))["ref"]
        await eventually(lambda: len(smtp.handler.received) >= 2, 30, "the ticket's two mails")
        manifest["tickets"]["delivered"] = {"ref": ref, "chat_id": welcome["chat_id"], "mails": 2,
                                            "transcript": ["My invoice shows the wrong VAT number.",
                                                           "I will ask billing and mail you."]}

        # 3. An active chat with history (the agent is now at capacity: max_chats = 1).
        visionary = cli(env, "token", "--sub", "cust-carl", "--plan", "visionary", "--email",
                        "carl@example.org", "--name", "Carl", "--ttl", "86400")
        carl, welcome = await served_chat("Carl", {"identity": visionary}, [
            ("visitor", "I cannot log in since this morning."), ("agent", "Let me look at your account."),
            ("visitor", "The error says 'session expired'.")])
        manifest["chats"]["active"] = {"chat_id": welcome["chat_id"], "resume": welcome["resume"],
                                       "agent": "sam", "last_seq": 3,
                                       "history": ["I cannot log in since this morning.",
                                                   "Let me look at your account.",
                                                   "The error says 'session expired'."]}

        # 4. Two waiting chats: the agent is full, so they queue (places 1 and 2).
        for place, name in ((1, "Dan"), (2, "Eve")):
            client, welcome = await visitor(hub, "en", name=name, email=f"{name.lower()}@example.org")
            sockets.append(client)
            await client.expect("queued", position=place)
            text = f"{name} is waiting for help with a refund."
            await client.send(type="message", text=text, client_id=f"{name}-0")
            await client.expect("message", text=text)
            manifest["chats"][f"waiting{place}"] = {"chat_id": welcome["chat_id"], "resume": welcome["resume"],
                                                    "position": place, "history": [text]}

        # 5. An offline chat (nobody online for German) with a message left.
        fritz, welcome = await visitor(hub, "de", name="Fritz", email="fritz@example.org")
        sockets.append(fritz)
        assert welcome["status"] == "offline", welcome
        await fritz.send(type="message", text="Bitte rufen Sie mich an.", client_id="fritz-0")
        await fritz.expect("message", text="Bitte rufen Sie mich an.")
        manifest["chats"]["offline"] = {"chat_id": welcome["chat_id"], "resume": welcome["resume"],
                                        "history": ["Bitte rufen Sie mich an."]}

        # 6. The mail server goes down; a visitor without an address leaves a message and goes:
        #    a ticket whose one mail (to the support inbox) waits in the outbox.
        smtp.stop()
        gus, welcome = await visitor(hub, "de", name="Gus")
        await gus.send(type="message", text="Das Formular geht nicht.", client_id="gus-0")
        await gus.expect("message", text="Das Formular geht nicht.")
        await gus.send(type="leave")
        closed = await gus.expect("closed")
        ref = closed.get("ref") or (await gus.expect("ticket"))["ref"]
        await gus.close()

        async def attempted() -> bool:
            ids = await rds.zrange("lc:outbox", 0, -1)
            return bool(ids) and all([int(await rds.hget(f"lc:outbox:{i}", "attempts") or 0) >= 1 for i in ids])

        await eventually(attempted, 30, "a failed delivery attempt of the pending mail")
        manifest["tickets"]["pending_mail"] = {"ref": ref, "chat_id": welcome["chat_id"], "mails": 1,
                                               "transcript": ["Das Formular geht nicht."]}
        manifest["outbox"] = await rds.zrange("lc:outbox", 0, -1)

        # Let one more heartbeat pass, then freeze: SAVE writes dump.rdb beside the AOF.
        await rds.save()
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "redis" / "dump.rdb", out / "dump.rdb")
        manifest["captured_at"] = time.time()
        manifest["redis_version"] = (await rds.info("server"))["redis_version"]
        manifest["keys"] = sorted(await rds.keys("*"))
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        (out / "desk.toml").write_text(DESK.lstrip())
        print(f"wrote {out}/dump.rdb ({(out / 'dump.rdb').stat().st_size} bytes, {len(manifest['keys'])} keys)")
    finally:
        for client in sockets:
            try:
                await client.close()
            except Exception:
                pass
        await rds.aclose()
        hub.terminate()
        smtp.stop()
        redis_server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(capture(Path(sys.argv[1])))
