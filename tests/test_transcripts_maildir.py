"""The local Maildir follows retention and erasure like every other copy of a transcript."""

from __future__ import annotations

import asyncio
import email
import email.policy
import subprocess
from pathlib import Path

import pytest
from redis.asyncio import Redis

from chat.config import load_config
from chat.runtime import Runtime
from chat.settings import load_settings
from transcripts.retention import purge_expired
from tests.support.clients import visitor
from tests.support.redis import DATABASES, db_url
from tests.support.servers import hub_env, HubProcess, LIVECHAT
from tests.support.waiting import wait_until

DAY = 86400


@pytest.fixture(scope="module")
def maildir_hub(redis_url, tmp_path_factory, test_config_path):
    """A hub of its own (own database, own data folder) writing mail to its Maildir."""
    root = tmp_path_factory.mktemp("maildir")
    url = db_url(redis_url, DATABASES["maildir"])

    async def empty() -> None:
        client = Redis.from_url(url)
        await client.flushdb()
        await client.aclose()

    asyncio.run(empty())
    env = hub_env(url, root / "data", test_config_path)
    hub = HubProcess(env, root / "data").start()
    yield hub, env, root / "data" / "mail"
    hub.terminate()


def mails(maildir: Path) -> list[tuple[Path, email.message.Message]]:
    found = []
    for sub in ("new", "cur"):
        for path in sorted((maildir / sub).glob("*")) if (maildir / sub).is_dir() else []:
            found.append((path, email.message_from_bytes(path.read_bytes(), policy=email.policy.default)))
    return found


def about(maildir: Path, ref: str) -> list[Path]:
    return [path for path, msg in mails(maildir) if msg["X-Livechat-Ref"] == ref]


async def ticket_by_mail(hub: HubProcess, maildir: Path, lang: str, address: str) -> str:
    """A visitor nobody serves leaves a message: its ticket's two mails land in the Maildir."""
    client, welcome = await visitor(hub, lang, name="Ada", email=address)
    await client.send(type="message", text="Please call me back.", client_id="m1")
    await client.expect("message", text="Please call me back.")
    await client.send(type="leave")
    ref = (await client.expect("closed"))["ref"]
    await client.close()
    await asyncio.to_thread(wait_until, lambda: len(about(maildir, ref)) == 2, 30, 0.05, f"the mails of {ref}")
    return ref


async def test_erasure_removes_the_addresses_mails_from_the_maildir(maildir_hub, lang):
    """`transcript delete --email` deletes that address's mails and leaves everyone else's."""
    hub, env, maildir = maildir_hub
    erased = await ticket_by_mail(hub, maildir, lang, f"erase-{lang}@example.org")
    kept = await ticket_by_mail(hub, maildir, lang, f"keep-{lang}@example.org")
    foreign = maildir / "new" / "someone-elses-mail"
    foreign.write_bytes(b"From: a@example.net\nTo: erase-" + lang.encode() + b"@example.org\nSubject: hi\n\nnot ours\n")
    done = subprocess.run([LIVECHAT, "transcript", "delete", "--email", f"erase-{lang}@example.org"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "mails deleted from the local Maildir: 2" in done.stdout
    assert about(maildir, erased) == [] and len(about(maildir, kept)) == 2 and foreign.exists()


async def test_retention_purges_the_maildir_by_age(maildir_hub, lang, tmp_path):
    """Past the retention period the purge that deletes tickets deletes their mails too."""
    hub, env, maildir = maildir_hub
    ref = await ticket_by_mail(hub, maildir, lang, f"old-{lang}@example.org")
    settings = load_settings(env)
    rt = Runtime(settings=settings, config=load_config(settings.config_path), redis=Redis.from_url(env["REDIS_URL"]))
    try:
        later = rt.clock() + (rt.config.retention_days + 1) * DAY
        assert await purge_expired(rt, later) >= 3  # the ticket (with its chat) and its two mails
    finally:
        await rt.redis.aclose()
    assert about(maildir, ref) == []
