"""Ticket mail through a real SMTP server (aiosmtpd on loopback): content, outages, racing
workers, TLS, and the Maildir used when no SMTP_URL is set."""

from __future__ import annotations

import asyncio
import mailbox
import ssl
import subprocess

import pytest

from chat import keys
from transcripts import outbox
from transcripts.outbox import drain_once, outbox_loop
from transcripts.smtp import parse_smtp_url
from transcripts.tickets import open_ticket
from tests.support.mail import html_part, SmtpServer, SUPPORT, text_part
from tests.support.transcripts import make_chat, make_runtime
from tests.support.waiting import eventually

VISITOR = "ada@example.org"


async def start_loops(*runtimes, **kwargs) -> list[asyncio.Task]:
    return [asyncio.create_task(outbox_loop(r, base_delay=0.05, **kwargs)) for r in runtimes]


async def stop(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_both_mails_carry_the_reference_in_the_subject(rt, tdb, smtp_server):
    """The visitor and the support inbox each get one mail whose subject quotes the reference."""
    ref = await open_ticket(rt, await make_chat(rt), "offline")
    assert await drain_once(rt) == 2
    visitor, inbox = smtp_server.to(VISITOR), smtp_server.to(SUPPORT)
    assert len(visitor) == 1 and len(inbox) == 1
    assert visitor[0].message["Subject"] == f"[{ref}] We received your request"
    assert f"[{ref}]" in inbox[0].message["Subject"]
    assert visitor[0].sender == "help@example.org"


async def test_replies_go_to_the_inbox_and_to_the_visitor(rt, tdb, smtp_server):
    """The visitor's Reply-To is the support inbox; the inbox copy's Reply-To is the visitor."""
    await open_ticket(rt, await make_chat(rt), "max_wait")
    await drain_once(rt)
    assert smtp_server.to(VISITOR)[0].message["Reply-To"] == SUPPORT
    assert smtp_server.to(SUPPORT)[0].message["Reply-To"].addresses[0].addr_spec == VISITOR


async def test_confirmation_has_transcript_and_asks_for_details(rt, tdb, smtp_server):
    """To a verified address, plain text and HTML both hold the transcript and invite details (tries, errors, screenshots)."""
    await open_ticket(rt, await make_chat(rt, [("visitor", "Error 0x80 on login"), ("agent", "Which app?")], verified=True,
                                            status="active"),
                      "unresolved")
    await drain_once(rt)
    msg = smtp_server.to(VISITOR)[0].message
    for body in (text_part(msg), html_part(msg)):
        assert "Error 0x80 on login" in body and "Which app?" in body
        assert "already tried" in body and "error message" in body and "screenshot" in body


async def test_confirmation_is_in_french_for_french_visitors(rt, tdb, smtp_server):
    """A visitor who chatted in French gets the French confirmation."""
    ref = await open_ticket(rt, await make_chat(rt, lang="fr"), "offline")
    await drain_once(rt)
    msg = smtp_server.to(VISITOR)[0].message
    assert msg["Subject"] == f"[{ref}] Nous avons bien reçu votre demande"
    assert "capture d'écran" in text_part(msg)


async def test_html_part_escapes_hostile_text(rt, tdb, smtp_server):
    """A visitor's markup arrives as text in the HTML part, never as markup."""
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    await open_ticket(rt, await make_chat(rt, [("visitor", hostile)], name="<b>Eve</b>", verified=True), "offline")
    await drain_once(rt)
    for received in smtp_server.messages:
        html = html_part(received.message)
        assert "<script>" not in html and "<img" not in html and "<b>Eve" not in html
        assert "&lt;script&gt;" in html and "&lt;b&gt;Eve" in html


async def test_smtp_outage_delays_mail_without_losing_or_duplicating_it(rt, tdb, smtp_server):
    """With the server down the mails stay queued; once it is back each arrives exactly once."""
    smtp_server.stop()
    ref = await open_ticket(rt, await make_chat(rt), "offline")
    assert await drain_once(rt, base_delay=0.05) == 0
    queued = {m["id"]: m for m in await outbox.queued(tdb)}
    assert set(queued) == {f"{ref}.visitor", f"{ref}.inbox"}
    assert all(m["attempts"] == 1 and m["last_error"] for m in queued.values())
    smtp_server.start()
    tasks = await start_loops(rt)
    try:
        await eventually(lambda: len(smtp_server.messages) == 2, message="both mails after the outage")
        await eventually(lambda: _empty(tdb), message="an empty outbox")
    finally:
        await stop(tasks)
    assert await drain_once(rt) == 0
    assert sorted(m.message["Message-ID"] for m in smtp_server.messages) == sorted(
        [f"<{ref}.inbox@example.org>", f"<{ref}.visitor@example.org>"])


async def _empty(redis) -> bool:
    return await redis.zcard(keys.OUTBOX) == 0


async def test_two_outbox_loops_deliver_each_mail_once(rt, tdb, smtp_server, redis_url, tmp_path):
    """Two workers draining the same outbox never send a mail twice."""
    refs = [await open_ticket(rt, await make_chat(rt, name=f"V{i}"), "offline") for i in range(8)]
    other = make_runtime(redis_url, tmp_path, smtp_server.url)
    tasks = await start_loops(rt, other)
    try:
        await eventually(lambda: _empty(tdb), message="an empty outbox")
    finally:
        await stop(tasks)
        await other.redis.aclose()
    ids = [m.message["Message-ID"] for m in smtp_server.messages]
    assert len(ids) == len(set(ids)) == 16
    assert {i.split(".")[0].lstrip("<") for i in ids} == set(refs)


async def test_outbox_loop_wakes_up_when_mail_is_queued(rt, tdb, smtp_server):
    """A sleeping worker (long idle interval) is woken by a new ticket instead of polling."""
    tasks = await start_loops(rt, max_idle=300)
    try:
        await eventually(lambda: _subscribed(tdb), message="the worker listening")
        await open_ticket(rt, await make_chat(rt), "offline")
        await eventually(lambda: len(smtp_server.messages) == 2, message="mail delivered after the wake-up")
    finally:
        await stop(tasks)


async def _subscribed(redis) -> bool:
    """This test's worker is listening: a pub/sub client on this part's own database (the
    hubs of other tests listen on the same channel from database 0)."""
    db = redis.connection_pool.connection_kwargs.get("db", 0)
    return any(int(c.get("db", -1)) == db and int(c.get("sub", 0)) >= 1 for c in await redis.client_list(_type="pubsub"))


async def test_required_starttls_keeps_mail_queued_on_a_plain_server(tdb, redis_url, smtp_server, tmp_path):
    """With ?starttls=require, a server without STARTTLS gets nothing and the mail waits."""
    strict = make_runtime(redis_url, tmp_path, smtp_server.url + "?starttls=require")
    try:
        await open_ticket(strict, await make_chat(strict), "offline")
        assert await drain_once(strict, base_delay=60) == 0
    finally:
        await strict.redis.aclose()
    assert smtp_server.messages == []
    assert all("STARTTLS" in m["last_error"] or "TLS" in m["last_error"] for m in await outbox.queued(tdb))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (our private CA for the TLS tests)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return cert, context


async def test_starttls_with_a_private_ca_delivers(tdb, redis_url, tmp_path, certificate):
    """smtp://...?starttls=require&cafile=... upgrades the connection and delivers."""
    cert, context = certificate
    server = SmtpServer(tls_context=context).start()
    secure = make_runtime(redis_url, tmp_path, f"{server.url}?starttls=require&cafile={cert}")
    try:
        await open_ticket(secure, await make_chat(secure), "offline")
        assert await drain_once(secure) == 2
    finally:
        server.stop()
        await secure.redis.aclose()
    assert len(server.messages) == 2


async def test_smtps_implicit_tls_delivers(tdb, redis_url, tmp_path, certificate):
    """smtps:// speaks TLS from the first byte."""
    cert, context = certificate
    server = SmtpServer(ssl_context=context).start()
    secure = make_runtime(redis_url, tmp_path, f"smtps://127.0.0.1:{server.port}?cafile={cert}")
    try:
        await open_ticket(secure, await make_chat(secure), "offline")
        assert await drain_once(secure) == 2
    finally:
        server.stop()
        await secure.redis.aclose()
    assert len(server.messages) == 2


def test_smtp_url_forms():
    """SMTP_URL: credentials (percent-encoded), default ports, STARTTLS modes, bad schemes."""
    t = parse_smtp_url("smtp://bot%40example.org:p%3Ass@mail.example.org:587?starttls=require")
    assert (t.host, t.port, t.username, t.password, t.starttls, t.implicit_tls) == (
        "mail.example.org", 587, "bot@example.org", "p:ss", True, False)
    assert parse_smtp_url("smtp://relay").port == 25 and parse_smtp_url("smtp://relay").starttls is None
    s = parse_smtp_url("smtps://u:p@mail.example.org")
    assert (s.port, s.implicit_tls, s.starttls) == (465, True, False)
    assert "p@" not in s.describe() and ":p" not in s.describe()
    for bad in ("http://x", "smtp://", "smtp://x?starttls=maybe", "smtp://x?colour=red"):
        with pytest.raises(ValueError):
            parse_smtp_url(bad)


async def test_maildir_is_the_default_and_readable(rt_maildir, tdb):
    """With no SMTP_URL the mails land in <data dir>/mail/new as plain files."""
    ref = await open_ticket(rt_maildir, await make_chat(rt_maildir), "offline")
    assert await drain_once(rt_maildir) == 2
    folder = rt_maildir.settings.data_dir / "mail"
    files = sorted((folder / "new").iterdir())
    assert len(files) == 2
    raw = b"".join(f.read_bytes() for f in files).decode()
    assert f"Subject: [{ref}] We received your request" in raw
    assert "Hello, I cannot log in." in raw
    subjects = sorted(m["subject"] for m in mailbox.Maildir(folder, create=False))
    assert all(ref in s for s in subjects)


async def test_unusable_smtp_url_stops_the_outbox_loudly(tdb, redis_url, tmp_path):
    """A mistyped SMTP_URL raises at once (and mail stays queued) instead of failing silently."""
    broken = make_runtime(redis_url, tmp_path, "smtp:/missing-host")
    try:
        with pytest.raises(ValueError):
            await outbox_loop(broken)
    finally:
        await broken.redis.aclose()
