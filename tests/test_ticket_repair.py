"""A ticket change left half done by a crash (its first steps made, the process gone before
the rest) is finished by the repair sweep of chat/duties.py: the half-done state is made by
running the first step's public function alone, as a process that died right after it would."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

from redis.asyncio.client import Pipeline

from chat import keys
from chat.duties import Duties
from chat.runtime import Runtime
from transcripts import outbox, tickets
from transcripts.desk import reply
from transcripts.mailer import page_link_mail
from transcripts.outbox import drain_once
from transcripts.tickets import commit_change, list_tickets, load_ticket, open_ticket, stage_chat_ticket
from tests.support.transcripts import make_chat
from tests.support.waiting import eventually


def later(rt: Runtime) -> Runtime:
    """The same process's view, `[timing] repair_after` and a second later: the sweep's turn."""
    return dataclasses.replace(rt, clock=lambda: time.time() + rt.config.timing.repair_after + 1)


async def queued_ids(rt: Runtime) -> set[str]:
    return {m["id"] for m in await outbox.queued(rt.redis)}


async def test_a_chat_ticket_staged_before_a_crash_is_claimed_listed_and_mailed_by_the_sweep(rt, tdb, smtp_server):
    """stage_chat_ticket alone (crash before the claim): nothing listed or queued; the sweep claims the chat's pointer, lists the ticket and queues both mails."""
    chat_id = await make_chat(rt)
    ref, staged = await stage_chat_ticket(rt, chat_id, "offline")
    assert staged
    assert (await list_tickets(rt.redis, 1))["total"] == 0 and await queued_ids(rt) == set()
    await Duties(later(rt)).repair()
    assert await tdb.get(keys.chat_ticket(chat_id)) == ref.encode()
    assert [t["ref"] for t in (await list_tickets(rt.redis, 1, status="open"))["tickets"]] == [ref]
    assert await queued_ids(rt) == {f"{ref}.visitor", f"{ref}.inbox"}
    assert await drain_once(rt) == 2
    assert await open_ticket(rt, chat_id, "offline") == ref  # the chat's later call finds the same ticket


async def test_a_sweep_before_repair_after_leaves_a_change_in_flight_alone(rt, tdb, smtp_server):
    """A change announced less than repair_after ago may still be running: the sweep does not touch it."""
    chat_id = await make_chat(rt)
    await stage_chat_ticket(rt, chat_id, "offline")
    await Duties(rt).repair()
    assert not await tdb.exists(keys.chat_ticket(chat_id))
    assert await queued_ids(rt) == set()


async def test_a_change_committed_before_a_crash_gets_its_index_and_mail_from_the_sweep(rt, tdb, smtp_server):
    """commit_change alone (crash before finish): a solved status and a queued mail are in the
    ticket but not in the indexes or the outbox's queue until the sweep finishes them."""
    ref = await open_ticket(rt, await make_chat(rt), "offline")
    assert await drain_once(rt) == 2
    ticket = await load_ticket(rt.redis, ref)
    mail = page_link_mail(ticket, "abc123", rt.settings, "", "")
    now = rt.clock()

    async def decide(_: dict[str, Any], __: Pipeline) -> Callable[[Pipeline], None]:
        def write(pipe: Pipeline) -> None:
            # By hand: a desk change (solve + mail) cut off by a crash after commit_change; no public path stops there
            pipe.hset(keys.ticket(ref), mapping=tickets.ticket_fields({"status": "solved", "solved_at": now,
                                                                       "due_at": None}))
            outbox.queue_mail(pipe, mail, now)
        return write

    await commit_change(rt.redis, ref, decide, now)
    assert (await load_ticket(rt.redis, ref))["status"] == "solved"
    assert [t["ref"] for t in (await list_tickets(rt.redis, 1, status="open"))["tickets"]] == [ref]
    assert await queued_ids(rt) == set()
    await Duties(later(rt)).repair()
    assert [t["ref"] for t in (await list_tickets(rt.redis, 1, status="solved"))["tickets"]] == [ref]
    assert (await list_tickets(rt.redis, 1, status="open"))["total"] == 0
    assert await queued_ids(rt) == {mail.mail_id}
    assert await drain_once(rt) == 1
    assert await eventually(lambda: len(smtp_server.messages) == 3, 10, message="the third mail")


async def test_a_finished_change_leaves_nothing_for_the_sweep(rt, tdb, smtp_server):
    """An agent's reply done whole: nothing announced is left, and a sweep changes nothing."""
    ref = await open_ticket(rt, await make_chat(rt), "offline")
    await reply(rt, ref, {"username": "sam", "name": "Sam"}, "Try again now.", internal=False)
    assert await tdb.zcard(keys.TICKETS_DIRTY) == 0
    before = await list_tickets(rt.redis, 1, status="pending")
    await Duties(later(rt)).repair()
    assert await list_tickets(rt.redis, 1, status="pending") == before
    assert [t["ref"] for t in before["tickets"]] == [ref]
