"""Every change of a chat's state, in one place: queued, offline, assigned, requeued,
transferred, closed, turned into a ticket. Each step writes Redis first, then publishes
the event that sockets (on any hub process) turn into frames."""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

import msgpack
from redis.exceptions import NoScriptError

from chat import frames, keys, rollups, stats, timers
from chat.batching import PipelineBatcher
from chat.store import execute, is_cluster, publish as bus_publish
from chat.chats import create_chat_on, decode_chat, load_chat, record_requeued, update_chat
from chat.queue import AgentSkills, Claimed, Hint, claimed as claim_result, hint_of, moved_to, topic_key
from chat.runtime import Runtime

log = logging.getLogger("livechat.lifecycle")

try:  # the archive (retention, erasure) lives with the transcripts, when they are installed
    from transcripts.archive import add_to_archive as _add_to_archive
except ImportError:
    _add_to_archive = None

QUEUE_CHANGED = msgpack.packb({"type": frames.EVENT_CHANGED})
QUEUE_WORK = msgpack.packb({"type": frames.EVENT_CHANGED, "work": True})


def queue_news(work: bool, moved: list[tuple[str, float | None]]) -> bytes:
    """A QUEUE_CHANNEL message that says where the line changed: ``moved`` lists (language,
    score) of each chat that joined, left or moved in that language's line (score None: it
    may be anywhere), so that hubs look up again only the places of the chats behind it
    (chat/places.py); an empty list: no place changed. QUEUE_CHANGED and QUEUE_WORK, which
    name nothing, make every hub look up every place."""
    return msgpack.packb({"type": frames.EVENT_CHANGED, "work": work, "moved": [[lang, score] for lang, score in moved]})


def _score(raw: Any) -> float | None:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


async def publish(rt: Runtime, channel: str, event: dict[str, Any]) -> None:
    await bus_publish(rt.redis, channel, msgpack.packb(event))


async def queue_changed(rt: Runtime, work: bool = False, moved: list[tuple[str, float | None]] | None = None) -> None:
    """Tell every hub the line moved (positions) and, with work, that a chat is waiting;
    ``moved`` says where, if known (queue_news). This process's own agents are offered the
    work directly: a local pairing never depends on the pub/sub round trip (which a
    reconnecting bus could miss)."""
    news = (QUEUE_WORK if work else QUEUE_CHANGED) if moved is None else queue_news(work, moved)
    await bus_publish(rt.redis, keys.QUEUE_CHANNEL, news)
    if work:
        rt.on_work()


async def open_chat(rt: Runtime, chat_id: str, fields: dict[str, Any], resume_ttl: int,
                    batcher: PipelineBatcher | None = None) -> str:
    """Store a new chat (``fields["status"]`` queued or offline) and return its resume token.
    Everything a hello writes goes in one round trip (and one fsync): the chat and its resume
    key, the visitor's presence, and either its place in line (with its max-wait deadline,
    the reports' "offered" and the doorbell for the hubs) or its offline deadline. The
    caller has subscribed to the chat's channel first, so no event about it can be missed.
    With a batcher (the hub's), the writes of hellos arriving together share a round trip."""
    now = rt.clock()
    status = fields["status"]
    chat = {k: ("1" if v is True else "0" if v is False else str(v)) for k, v in fields.items()}
    async with rt.redis.pipeline(transaction=False) as pipe:
        token = create_chat_on(pipe, chat_id, fields, resume_ttl)
        if is_cluster(rt.redis):  # a cluster pipeline runs every node's part at once: the record goes first
            await pipe.execute()
        if status == frames.CHAT_QUEUED:
            plan = rt.config.plan(chat.get("plan"))
            arrived = float(chat["arrived_at"])
            route = dict(lang=chat["lang"], topic=topic_key(chat.get("topic"), chat.get("emergency") == "1"),
                         plan=plan.name, score=float(chat["score"]), arrived_at=arrived,
                         emergency=chat.get("emergency") == "1", timer=(timers.member(timers.MAX_WAIT, chat_id),
                                                                         arrived + plan.max_wait), seen=now)
            rt.queue.enqueue_on(pipe, chat_id, **route)
            rollups.chat_queued_on(pipe, rt, chat_id, chat, arrived)
            news = queue_news(True, [(route["lang"], route["score"])])
            bus_publish(pipe, keys.QUEUE_CHANNEL, news)
        else:
            pipe.zadd(keys.VISITORS_SEEN, {chat_id: now})
            timers.schedule_on(pipe, timers.OFFLINE_IDLE, chat_id, now + rt.config.timing.offline_idle)
        results = await execute(rt.redis, pipe, raise_on_error=False, batcher=batcher)
    for result in results:
        if isinstance(result, Exception) and not isinstance(result, NoScriptError):
            raise result
    if status == frames.CHAT_QUEUED:
        if any(isinstance(result, NoScriptError) for result in results):  # Redis lost its script cache
            await rt.queue.enqueue(chat_id, **route)
            await bus_publish(rt.redis, keys.QUEUE_CHANNEL, news)
        rt.on_work()  # this process's agents are offered it directly (see queue_changed)
    return token


async def go_offline(rt: Runtime, chat_id: str, reason: str, hint: Hint | None = None) -> None:
    """Nobody can take the chat now: what the visitor writes becomes a ticket. ``hint``: the
    chat's lines as the caller knows them (its visitor's socket), which saves the round trip
    that finds them (chat/queue.py)."""
    route = await rt.queue.remove(chat_id, hint=hint)
    await update_chat(rt.redis, chat_id, status=frames.CHAT_OFFLINE, offline_reason=reason)
    await timers.cancel_all(rt.redis, chat_id)
    await timers.schedule(rt.redis, timers.OFFLINE_IDLE, chat_id, rt.clock() + rt.config.timing.offline_idle)
    await publish(rt, keys.chat_channel(chat_id), {"type": frames.OFFLINE, "reason": reason})
    await queue_changed(rt, moved=[(route["lang"], _score(route.get("score")))] if route else [])


Writes = Callable[[Any], None]  # commands for a pipeline the caller runs


async def assigned(rt: Runtime, chat_id: str, username: str, agent_name: str, later: list[Writes] | None = None,
                   claim: Claimed | None = None) -> None:
    """After a successful claim: record it and tell the visitor and the agent's sockets.

    With ``claim`` (what the claim returned), the chat's lines and score come from its route
    and the record is one round trip; without it, the chat's record is read first. With
    ``later``, the assignment's figures (live stats, reports) are not written here but
    appended there for the caller's next pipeline: the agent is shown the chat before they
    are counted."""
    now = rt.clock()
    chat_key = keys.chat(chat_id)
    fields = ("assigned_at", "arrived_at", "plan", "lang", "topic")
    if claim is None:
        *read, score, emergency = await rt.redis.hmget(chat_key, *fields, "score", "emergency")
        hint = Hint((read[3] or b"").decode(), topic_key(read[4].decode() if read[4] else None, emergency == b"1"),
                    username)
        place = _score(score)
    else:
        hint, place = Hint(claim.hint.lang, claim.hint.topic, username), claim.score
    # One round trip: each write would otherwise wait for its own fsync. A claim from a
    # language line left the chat in its topic line (chat/queue.py): it leaves it here.
    async with rt.redis.pipeline(transaction=False) as pipe:
        if claim is not None:
            pipe.hmget(chat_key, *fields)  # before the HSET below: was the chat assigned before?
        rt.queue.unlink_on(pipe, chat_id, hint)
        pipe.hset(chat_key, mapping={"status": frames.CHAT_ACTIVE, "agent": username,
                                     "agent_name": agent_name, "assigned_at": repr(now)})
        pipe.hdel(chat_key, "wait_offered")  # an offer made while waiting ends with the wait
        pipe.zrem(keys.TIMERS, *timers.cancel_all_members(chat_id))
        bus_publish(pipe, keys.chat_channel(chat_id),
                     msgpack.packb({"type": frames.ASSIGNED, "agent": {"name": agent_name, "username": username}}))
        bus_publish(pipe, keys.agent_channel(username), msgpack.packb({"type": frames.ASSIGNED, "chat_id": chat_id}))
        # The claim took the chat out of its language's line: the places behind it moved.
        bus_publish(pipe, keys.QUEUE_CHANNEL, queue_news(False, [(hint.lang, place)]) if hint.lang else QUEUE_CHANGED)
        results = await execute(rt.redis, pipe)
    if claim is not None:
        read, results = results[0], results[1:]
    first, arrived, *dims = read
    if not first:  # the chat's first assignment: the wait it had
        record = {k: v.decode() for k, v in zip(("plan", "lang", "topic"), dims) if v is not None}
        waited = max(0.0, now - float(arrived or now))

        def figures(on: Any) -> None:
            stats.add_assignment(on, waited, now)
            rollups.chat_assigned_on(on, rt, chat_id, record, username, waited, now)

        if later is None:
            await write([figures], rt)
        else:
            later.append(figures)
    if moved_to(results[0]) is not None:  # the record was behind the route (a flag raced the claim)
        await rt.queue.unlink(chat_id, moved_to(results[0]))


async def write(writes: list[Writes], rt: Runtime) -> None:
    """Run writes left for later (``assigned``'s ``later``) in one round trip."""
    async with rt.redis.pipeline(transaction=False) as pipe:
        for each in writes:
            each(pipe)
        await execute(rt.redis, pipe)


async def requeued(rt: Runtime, chat_id: str, previous_agent: str | None = None) -> None:
    """The chat is back in line at its original place (agent gone or transfer to queue).
    Back in line, it may be claimed before this runs: then the new agent's record stands and
    its visitor, already told `assigned`, is not told `queued`."""
    if previous_agent:
        still_waiting = await record_requeued(rt.redis, chat_id, previous_agent, frames.CHAT_QUEUED)
    else:
        await update_chat(rt.redis, chat_id, status=frames.CHAT_QUEUED, agent="", agent_name="")
        still_waiting = True
    if still_waiting:
        await publish(rt, keys.chat_channel(chat_id), {"type": frames.EVENT_REQUEUED})
    if previous_agent:
        await publish(rt, keys.agent_channel(previous_agent), {"type": frames.RELEASED, "chat_id": chat_id})
    await queue_changed(rt, work=True)


async def transfer_to_queue(rt: Runtime, chat_id: str, username: str) -> bool:
    """The agent who holds the chat sends it back to the queue (NotHolder if it does not)."""
    if not await rt.queue.requeue(chat_id, exclude_agent=username, holder=username):
        return False
    await requeued(rt, chat_id, previous_agent=username)
    return True


async def transfer_to_agent(rt: Runtime, chat_id: str, target: str, holder: str = "") -> tuple[bool, str]:
    """Hand the chat to another agent; with holder, only if that agent holds it (NotHolder)."""
    ok, detail = await rt.queue.transfer(chat_id, target, holder)
    if not ok:
        return False, detail
    from agents.accounts import load_account

    account = await load_account(rt.redis, target)
    name = account.name if account else target
    await update_chat(rt.redis, chat_id, agent=target, agent_name=name)
    await publish(rt, keys.agent_channel(detail), {"type": frames.RELEASED, "chat_id": chat_id, "to": target})
    await publish(rt, keys.agent_channel(target), {"type": frames.ASSIGNED, "chat_id": chat_id, "transferred_from": detail})
    await publish(rt, keys.chat_channel(chat_id), {"type": frames.ASSIGNED, "agent": {"name": name, "username": target}})
    await queue_changed(rt, moved=[])  # an agent's load changed, nobody's place
    return True, detail


async def close(rt: Runtime, chat_id: str, reason: str, ref: str | None = None, holder: str = "") -> bool:
    """End the chat for good. Returns False if it was already closed. With holder (an agent
    closing it), NotHolder unless that agent holds the chat, and nothing changes."""
    closed, _ = await _close(rt, chat_id, reason, ref, None, holder)
    return closed


async def close_and_claim(rt: Runtime, chat_id: str, agent: AgentSkills,
                          assign: Callable[[Claimed, list[Writes]], Awaitable[None]]) -> bool:
    """An agent closes a chat it holds (NotHolder otherwise) as resolved and claims the next
    chat for the slot it frees in the same round trip that takes the closed one out of
    routing. ``assign`` records and shows the claim before the rest of the close is
    written, and leaves the claim's figures in the list it is given, which go with the
    close's writes: the freed slot is filled two round trips after the close arrives
    instead of four. Returns False if the chat was already closed."""
    closed, _ = await _close(rt, chat_id, frames.CLOSED_RESOLVED, None, agent, agent.username, assign)
    return closed


async def _close(rt: Runtime, chat_id: str, reason: str, ref: str | None, claim_for: AgentSkills | None,
                 holder: str = "", assign: Callable[[Claimed, list[Writes]], Awaitable[None]] | None = None
                 ) -> tuple[bool, str | None]:
    """Close the chat; with claim_for, claim the agent's next chat too and hand it to
    ``assign`` at once (required with claim_for: a claim must be recorded)."""
    async with rt.redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.chat(chat_id))
        if holder:
            # Taken out of routing only if this agent holds it, in one script and in the same
            # round trip as the read: the socket's own list of chats may be stale. (A closed
            # chat has no route left to take.) The rest of the close below finds the route gone.
            rt.queue.remove_on(pipe, chat_id, holder)
        if claim_for is not None:
            # After the removal, in the same slot: the claim sees the slot just freed. (If
            # the agent did not hold the chat, the claim is still within its capacity.)
            rt.queue.claim_on(pipe, claim_for, rt.clock())
        found = await execute(rt.redis, pipe, raise_on_error=False)
    if isinstance(found[0], Exception):
        raise found[0]
    claimed = claim_result(found[-1]) if claim_for is not None else None
    # The freed slot's new chat is recorded and shown first, the rest of the close written
    # after it: Redis runs one command at a time, and the close's writes (reports, archive)
    # are the larger part. Until then the closed chat is out of routing already (above).
    later: list[Writes] = []
    try:
        if claimed is not None and assign is not None:
            await assign(claimed, later)
    finally:
        try:
            closed = await _close_found(rt, chat_id, reason, ref, claim_for, holder, found, later)
        finally:
            if later:  # not written with the close (it raised, or had nothing to write)
                await write(later, rt)
    return closed, claimed.chat_id if claimed else None


async def _close_found(rt: Runtime, chat_id: str, reason: str, ref: str | None, claim_for: AgentSkills | None,
                       holder: str, found: list[Any], later: list[Writes]) -> bool:
    """The close after its first round trip (``found``); writes ``later`` with its own
    writes, emptying the list."""
    if holder:
        await rt.queue.removed(found[1], chat_id, holder)  # NotHolder, unless it held the chat
    chat = decode_chat(found[0])
    if not chat or chat.get("status") == frames.CHAT_CLOSED:
        return False
    now = rt.clock()
    event = frames.closed(reason, ref)
    # A chat whose visitor never wrote holds nothing worth keeping for the retention period
    # (a ticket made from it has its own copy): it goes within minutes, so that anonymous
    # hellos cannot pile up in Redis for a month.
    silent = int(chat.get("visitor_msgs") or 0) == 0
    silent_ttl = max(1, int(rt.config.timing.silent_chat_ttl))
    # One round trip (and one fsync) for all of it.
    async with rt.redis.pipeline(transaction=False) as pipe:
        rt.queue.remove_on(pipe, chat_id, hint=hint_of(chat))
        pipe.hset(keys.chat(chat_id), mapping={"status": frames.CHAT_CLOSED, "closed_reason": reason,
                                               "closed_at": repr(now), "ticket": ref or ""})
        pipe.zrem(keys.TIMERS, *timers.cancel_all_members(chat_id))
        pipe.hdel(keys.TIMER_FAILURES, *timers.cancel_all_members(chat_id))
        pipe.zrem(keys.VISITORS_SEEN, chat_id)
        if chat.get("assigned_at"):
            stats.add_handled(pipe, max(0.0, now - float(chat["assigned_at"])), now)
            rollups.chat_closed_on(pipe, rt, chat_id, chat, now)
        if silent:
            for key in (keys.chat(chat_id), keys.chat_log(chat_id), keys.chat_client_ids(chat_id),
                        keys.chat_ticket(chat_id)):
                pipe.expire(key, silent_ttl)
            if chat.get("resume_hash"):
                pipe.expire(keys.resume(chat["resume_hash"]), silent_ttl)
        elif _add_to_archive is not None:
            _add_to_archive(pipe, chat_id, now, chat.get("email"))
        while later:
            later.pop(0)(pipe)
        bus_publish(pipe, keys.chat_channel(chat_id), msgpack.packb(event))
        if chat.get("status") in (frames.CHAT_QUEUED, frames.CHAT_ACTIVE):
            # A freed slot is work for the hubs, unless the claim above has just refilled it.
            work = chat.get("status") == frames.CHAT_ACTIVE and claim_for is None
            moved: list[tuple[str, float | None]] = []
            if chat.get("status") == frames.CHAT_QUEUED:
                moved.append((chat.get("lang", ""), _score(chat.get("score"))))
            if claim_for is not None:  # whichever chat it claims left one of these lines
                moved += [(lang, None) for lang in claim_for.langs]
            bus_publish(pipe, keys.QUEUE_CHANNEL, queue_news(work, moved))
        results = await execute(rt.redis, pipe, raise_on_error=False)
    for result in results[1:]:
        if isinstance(result, Exception):
            raise result
    await rt.queue.removed(results[0], chat_id)
    return True


async def make_ticket(rt: Runtime, chat_id: str, trigger: str, holder: str = "") -> str | None:
    """Turn the chat into an email ticket (once per chat, whoever calls first) and close it.
    With holder (an agent closing it as unresolved), NotHolder unless that agent holds it."""
    from transcripts.tickets import open_ticket

    chat = await load_chat(rt.redis, chat_id)
    if not chat or chat.get("status") == frames.CHAT_CLOSED:
        return None
    if holder:
        await rt.queue.remove(chat_id, holder, hint_of(chat, holder))  # before any ticket or mail is made
    ref = await open_ticket(rt, chat_id, trigger)
    event = {"type": frames.TICKET, "ref": ref}
    if await rt.redis.hget(keys.ticket(ref), "confirmation") == b"limited":
        event["confirmation"] = "limited"  # the visitor is told why no confirmation comes
    await publish(rt, keys.chat_channel(chat_id), event)
    if await close(rt, chat_id, frames.CLOSED_TICKET, ref):
        await stats.record_ticket(rt.redis, trigger, rt.clock())
        await rollups.ticket_made(rt, ref, {**chat, "channel": frames.CHANNEL_CHAT}, trigger, rt.clock())
    return ref


async def visitor_left(rt: Runtime, chat_id: str) -> None:
    """The visitor ended the chat (leave frame, or gone past the grace period)."""
    chat = await load_chat(rt.redis, chat_id)
    if not chat or chat.get("status") == frames.CHAT_CLOSED:
        return
    wrote = int(chat.get("visitor_msgs") or 0) > 0
    status = chat.get("status")
    if status == frames.CHAT_QUEUED:
        await rollups.chat_abandoned(rt, chat_id, chat, rt.clock())
    if status == frames.CHAT_OFFLINE and wrote:
        await make_ticket(rt, chat_id, frames.TRIGGER_OFFLINE)
    elif status == frames.CHAT_QUEUED and wrote:
        await make_ticket(rt, chat_id, frames.TRIGGER_VISITOR_LEFT)
    else:
        await close(rt, chat_id, frames.CLOSED_VISITOR_LEFT)


async def fire_timer(rt: Runtime, kind: str, chat_id: str) -> None:
    chat = await load_chat(rt.redis, chat_id)
    if not chat:
        return
    status = chat.get("status")
    if kind == timers.MAX_WAIT and status == frames.CHAT_QUEUED:
        plan = rt.config.plan(chat.get("plan"))
        await update_chat(rt.redis, chat_id, wait_offered=repr(rt.clock()))
        await timers.schedule(rt.redis, timers.WAIT_CHOICE, chat_id, rt.clock() + rt.config.timing.wait_choice_timeout)
        await publish(rt, keys.chat_channel(chat_id), {
            "type": frames.WAIT_OR_TICKET, "max_wait_s": int(plan.max_wait),
            "timeout_s": int(rt.config.timing.wait_choice_timeout),
        })
    elif (kind == timers.WAIT_CHOICE and status == frames.CHAT_QUEUED
          and await rt.redis.hdel(keys.chat(chat_id), "wait_offered")):
        await make_ticket(rt, chat_id, frames.TRIGGER_MAX_WAIT)  # (unless the visitor answered meanwhile)
    elif kind == timers.OFFLINE_IDLE and status == frames.CHAT_OFFLINE:
        if int(chat.get("visitor_msgs") or 0) > 0:
            await make_ticket(rt, chat_id, frames.TRIGGER_OFFLINE)
        else:
            await close(rt, chat_id, frames.CLOSED_TIMEOUT)


async def answer_wait_offer(rt: Runtime, chat_id: str, choice: str) -> bool:
    """The visitor answered the wait_or_ticket offer: "ticket" makes the ticket, "wait" asks
    again after another max_wait. False (nothing done) unless the hub made the offer and the
    chat is still waiting: otherwise anyone could have the desk mail any address at will.
    Each offer is answered once (taking ``wait_offered`` is the atomic step)."""
    chat = await load_chat(rt.redis, chat_id)
    if not chat or chat.get("status") != frames.CHAT_QUEUED or not chat.get("wait_offered"):
        return False
    if not await rt.redis.hdel(keys.chat(chat_id), "wait_offered"):
        return False  # answered by another tab, or the answer timed out, a moment ago
    if choice == frames.CHOICE_TICKET:
        await make_ticket(rt, chat_id, frames.TRIGGER_MAX_WAIT)
    else:
        plan = rt.config.plan(chat.get("plan"))
        await timers.cancel(rt.redis, timers.WAIT_CHOICE, chat_id)
        await timers.schedule(rt.redis, timers.MAX_WAIT, chat_id, rt.clock() + plan.max_wait)
    return True
