"""Tickets: references, one ticket per chat whatever races, fields and paging."""

from __future__ import annotations

import asyncio
import re

import pytest
from redis.asyncio import Redis

from chat import keys
from transcripts import refs, tickets
from transcripts.contact import email_hash
from transcripts.tickets import list_tickets, load_ticket, open_ticket
from tests.support.transcripts import make_chat, make_runtime

REF = re.compile(r"^LC-[23456789ABCDEFGHJKMNPQRSTVWXYZ]{6}$")


async def outbox_ids(redis: Redis) -> list[str]:
    return sorted(m.decode() for m in await redis.zrange(keys.OUTBOX, 0, -1))


def test_reference_format():
    """A reference is LC- and six characters without 0/O, 1/I/L or U."""
    for _ in range(500):
        ref = refs.new_ref()
        assert REF.match(ref), ref
        assert not set(ref[3:]) & set("01OILU")


def test_references_are_random_not_sequential():
    """Fresh references are all different and do not count upwards (300 draws from 7e8)."""
    many = [refs.new_ref() for _ in range(300)]
    assert len(set(many)) == len(many)
    assert many != sorted(many)


def test_reference_typed_in_lower_case_is_found():
    """normalize_ref accepts what a customer types and rejects anything else."""
    assert refs.normalize_ref(" lc-7k3f9q ") == "LC-7K3F9Q"
    assert refs.normalize_ref("../../etc/passwd") is None
    assert refs.normalize_ref("LC-7K3F9O") is None  # O is not in the alphabet


async def test_open_ticket_twice_makes_one_ticket(rt, tdb):
    """A second open_ticket returns the same reference and queues no more mail."""
    chat_id = await make_chat(rt)
    first = await open_ticket(rt, chat_id, "offline")
    second = await open_ticket(rt, chat_id, "visitor_left")
    assert first == second and REF.match(first)
    assert await tdb.zcard(keys.TICKETS) == 1
    assert await outbox_ids(tdb) == [f"{first}.inbox", f"{first}.visitor"]


async def test_concurrent_open_ticket_from_two_clients_makes_one_ticket(rt, tdb, redis_url, tmp_path, smtp_server):
    """Two processes racing (separate Redis clients) get one reference, one ticket, two mails."""
    chat_id = await make_chat(rt)
    others = [make_runtime(redis_url, tmp_path, smtp_server.url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(open_ticket(r, chat_id, "offline") for r in [rt, *others]))
    finally:
        for other in others:
            await other.redis.aclose()
    assert len(set(results)) == 1
    ref = results[0]
    assert await tdb.zrange(keys.TICKETS, 0, -1) == [ref.encode()]
    assert await outbox_ids(tdb) == [f"{ref}.inbox", f"{ref}.visitor"]
    assert (await tdb.get(keys.chat_ticket(chat_id))).decode() == ref


async def test_ticket_holds_visitor_trigger_and_transcript(rt, tdb):
    """The ticket keeps the visitor's profile, the trigger, timestamps and the whole transcript."""
    chat_id = await make_chat(rt, [("visitor", "My invoice is wrong"), ("agent", "Let me check")],
                              name="Bea", email_address="Bea@Example.org", plan="visionary", verified=True,
                              emergency=True, status="active")
    ref = await open_ticket(rt, chat_id, "unresolved")
    ticket = await load_ticket(tdb, ref)
    assert ticket["ref"] == ref and ticket["status"] == "open" and ticket["chat_id"] == chat_id
    assert (ticket["name"], ticket["email"], ticket["plan"], ticket["lang"], ticket["topic"]) == (
        "Bea", "Bea@Example.org", "visionary", "en", "billing")
    assert ticket["verified"] is True and ticket["emergency"] is True
    assert ticket["trigger"] == "unresolved" and ticket["agent_name"] == "Sam"
    assert [(m["from"], m["text"], m["seq"]) for m in ticket["transcript"]] == [
        ("visitor", "My invoice is wrong", 1), ("agent", "Let me check", 2)]
    assert ticket["created_at"] == ticket["updated_at"] > 0
    assert await tdb.sismember(keys.tickets_by_email(email_hash("bea@example.org")), ref)
    assert (await tdb.hget(keys.chat(chat_id), "ticket")).decode() == ref


async def test_ticket_without_contact_is_kept_without_visitor_mail(rt, tdb):
    """No email address: the ticket exists for agents and only the inbox is mailed."""
    chat_id = await make_chat(rt, email_address=None)
    ref = await open_ticket(rt, chat_id, "offline")
    assert (await load_ticket(tdb, ref))["email"] == ""
    assert await outbox_ids(tdb) == [f"{ref}.inbox"]


async def test_reference_collision_draws_another(rt, tdb, monkeypatch):
    """A reference already in use is never reused: open_ticket draws a new one."""
    taken = await open_ticket(rt, await make_chat(rt), "offline")
    draws = iter([taken, "LC-22222A"])
    monkeypatch.setattr(tickets, "new_ref", lambda: next(draws))
    ref = await open_ticket(rt, await make_chat(rt), "offline")
    assert ref == "LC-22222A"
    assert (await load_ticket(tdb, taken))["ref"] == taken


async def test_unknown_trigger_is_refused(rt, tdb):
    """Only the four triggers make tickets."""
    with pytest.raises(ValueError):
        await open_ticket(rt, await make_chat(rt), "bored")


async def test_unknown_chat_is_refused(rt, tdb):
    """A chat that does not exist (purged, mistyped) raises LookupError and stores nothing."""
    with pytest.raises(LookupError):
        await open_ticket(rt, "no-such-chat-123", "offline")
    assert await tdb.zcard(keys.TICKETS) == 0


async def test_list_tickets_pages_newest_first(rt, tdb):
    """Paging walks every ticket once, newest first, with totals."""
    made = [await open_ticket(rt, await make_chat(rt, name=f"V{i}"), "offline") for i in range(5)]
    page1 = await list_tickets(tdb, 1, per_page=2)
    page3 = await list_tickets(tdb, 3, per_page=2)
    assert (page1["total"], page1["pages"]) == (5, 3)
    seen = [t["ref"] for p in (1, 2, 3) for t in (await list_tickets(tdb, p, per_page=2))["tickets"]]
    assert seen == list(reversed(made))
    assert [t["ref"] for t in page3["tickets"]] == [made[0]]
    assert "transcript" not in page1["tickets"][0]
