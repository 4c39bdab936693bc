"""`livechat transcript export|delete`, archiving, retention and erasure."""

from __future__ import annotations

import argparse
import json
import time

import pytest

from chat import frames, keys
from chat.lifecycle import close, make_ticket
from transcripts import cli
from transcripts.contact import email_hash
from transcripts import desk
from transcripts.retention import purge_expired
from transcripts.tickets import load_ticket, open_ticket
from tests.support.transcripts import AGENT, make_chat

DAY = 86400.0


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="livechat")
    cli.add_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(list(argv))


async def run(rt, *argv: str) -> int:
    args = parse(*argv)
    return await args.func(rt, args)


async def test_export_chat_as_text(rt, tdb, capsys):
    """A chat exports as readable text: the visitor, then one line per message."""
    chat_id = await make_chat(rt, [("visitor", "Hi there"), ("agent", "Hello Ada")], status="closed")
    assert await run(rt, "transcript", "export", "--format", "txt", "--", chat_id) == 0
    out = capsys.readouterr().out
    assert f"Chat {chat_id}" in out and "Ada <ada@example.org>" in out
    assert "] Ada: Hi there" in out and "] Sam: Hello Ada" in out


async def test_export_ticket_as_json(rt, tdb, capsys):
    """A ticket reference exports as JSON with the visitor and every message."""
    ref = await open_ticket(rt, await make_chat(rt, [("visitor", "Refund please")]), "offline")
    assert await run(rt, "transcript", "export", "--format", "json", ref.lower()) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "ticket" and doc["ref"] == ref and doc["visitor"]["email"] == "ada@example.org"
    assert [m["text"] for m in doc["messages"]] == ["Refund please"]


async def test_export_to_a_file_under_the_current_folder(rt, tdb, tmp_path, monkeypatch, capsys):
    """--out writes a new private file; an existing file is not overwritten."""
    monkeypatch.chdir(tmp_path)
    chat_id = await make_chat(rt, status="closed")
    assert await run(rt, "transcript", "export", "--out", "chat.txt", "--", chat_id) == 0
    written = tmp_path / "chat.txt"
    assert "Hello, I cannot log in." in written.read_text()
    assert written.stat().st_mode & 0o777 == 0o600
    assert await run(rt, "transcript", "export", "--out", "chat.txt", "--", chat_id) == 1


@pytest.mark.parametrize("target", ["../../etc/passwd", "/etc/passwd", "lc:chat:*", "a b", "..", "LC-7K3F9Q/../x", ""])
async def test_export_refuses_anything_but_a_chat_id_or_reference(rt, tdb, target, capsys):
    """The target is validated by pattern and never used as a path or a key pattern."""
    assert await run(rt, "transcript", "export", "--", target) == 2
    assert "expected a ticket reference" in capsys.readouterr().err


async def test_export_refuses_an_output_path_outside_the_allowed_folders(rt, tdb, tmp_path, monkeypatch, capsys):
    """--out ../../somewhere is refused and nothing is written."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    chat_id = await make_chat(rt, status="closed")
    assert await run(rt, "transcript", "export", "--out", "../../escaped.txt", "--", chat_id) == 1
    assert "outside" in capsys.readouterr().err
    assert not (tmp_path.parent / "escaped.txt").exists()


async def test_export_of_an_unknown_chat_fails_cleanly(rt, tdb, capsys):
    """An unknown id exits 1 with a message."""
    assert await run(rt, "transcript", "export", "LC-ZZZZZZ") == 1
    assert "no chat or ticket" in capsys.readouterr().err


async def test_closing_a_chat_archives_it_by_time_and_email(rt, tdb):
    """Closing a chat indexes it for retention and erasure without copying the log."""
    chat_id = await make_chat(rt, status="active", email_address="Ada@Example.org")
    before = set(await tdb.keys("*"))
    assert await close(rt, chat_id, frames.CLOSED_RESOLVED, holder=AGENT)  # as Sam's close frame does
    closed_at = float(await tdb.hget(keys.chat(chat_id), "closed_at"))
    assert await tdb.zscore(keys.CHATS_CLOSED, chat_id) == closed_at
    assert await tdb.sismember(keys.chats_by_email(email_hash("ada@example.org")), chat_id)
    added = set(await tdb.keys("*")) - before
    assert {keys.CHATS_CLOSED.encode(), keys.chats_by_email(email_hash("ada@example.org")).encode()} <= added
    assert [k for k in added if await tdb.type(k) == b"list"] == []  # no copy of the log


async def test_delete_by_email_erases_chats_tickets_and_queued_mail(rt, tdb, capsys):
    """Erasure removes every chat, ticket and outbox entry of the address, and nobody else's."""
    mine = [await make_chat(rt, status="closed", email_address="ada@example.org") for _ in range(2)]
    offline = await make_chat(rt, email_address="ADA@example.org")
    ref = await make_ticket(rt, offline, "offline")  # what the hub does when nobody answers: ticket, chat closed
    other = await make_chat(rt, status="closed", email_address="bob@example.org")
    other_ref = await open_ticket(rt, other, "unresolved")
    assert await run(rt, "transcript", "delete", "--email", "Ada@Example.org") == 0
    out = capsys.readouterr().out
    assert "chats deleted:   3" in out and ref in out and "queued mails deleted: 2" in out
    for chat_id in [*mine, offline]:
        assert not await tdb.exists(keys.chat(chat_id), keys.chat_log(chat_id), keys.chat_ticket(chat_id))
    assert await load_ticket(tdb, ref) is None
    assert {m.decode() for m in await tdb.zrange(keys.OUTBOX, 0, -1)} == {f"{other_ref}.visitor", f"{other_ref}.inbox"}
    assert await tdb.exists(keys.chat(other)) and await load_ticket(tdb, other_ref)


async def test_delete_by_email_leaves_an_open_chat_and_says_so(rt, tdb, capsys):
    """A chat still in progress is not deleted under the hub; the command reports it and exits 1."""
    live = await make_chat(rt, status="active", email_address="ada@example.org")
    assert await run(rt, "transcript", "delete", "--email", "ada@example.org") == 1
    assert live in capsys.readouterr().out
    assert await tdb.exists(keys.chat(live))


async def test_delete_refuses_something_that_is_not_an_email(rt, tdb):
    """A malformed address exits 2 and deletes nothing."""
    assert await run(rt, "transcript", "delete", "--email", "*") == 2


async def test_retention_purges_only_what_is_older_than_the_period(rt, tdb):
    """With an injected clock, chats closed and tickets solved before now - 30 days go; newer
    ones, and a ticket still open however old, stay."""
    now = time.time()
    rt.clock = lambda: now - 40 * DAY
    old_chat = await make_chat(rt, status="closed")
    rt.clock = lambda: now - 2 * DAY
    new_chat = await make_chat(rt, status="closed")
    rt.clock = lambda: now - 31 * DAY
    old_ref = await open_ticket(rt, await make_chat(rt), "offline")
    await desk.update(rt, old_ref, status="solved")
    still_open = await open_ticket(rt, await make_chat(rt), "offline")
    rt.clock = lambda: now
    new_ref = await open_ticket(rt, await make_chat(rt), "offline")
    await desk.update(rt, new_ref, status="solved")

    assert await purge_expired(rt, now) == 2
    assert await load_ticket(tdb, still_open)
    assert not await tdb.exists(keys.chat(old_chat), keys.chat_log(old_chat))
    assert await tdb.exists(keys.chat(new_chat), keys.chat_log(new_chat))
    assert await load_ticket(tdb, old_ref) is None and await load_ticket(tdb, new_ref)
    assert not await tdb.exists(keys.outbox_mail(f"{old_ref}.visitor"))
    assert await purge_expired(rt, now) == 0
    assert await purge_expired(rt, now + 60 * DAY) == 2  # the newer chat and ticket, in their turn
