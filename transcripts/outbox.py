"""The mail outbox in Redis: a mail is stored in the same transaction as the ticket change that
makes it (in the ticket's slot), put in the outbox's queue right after (transcripts.tickets.
finish; the repair sweep after a crash), and drained by every worker (and `livechat serve`)
with retries and back-off.

An SMTP outage delays mail, never loses it. Delivery is exactly once in normal operation:
a mail is *claimed* atomically (a Lua script moves its score to now + LEASE only if it is
still due, so two workers never hold the same mail), sent, then deleted. The one at-least-once
edge: a worker that dies after the server accepted a mail but before deleting it leaves the
mail to be resent when its lease expires; the Message-ID is stable (mailer.message_id), so
mail servers and readers can spot the duplicate.

A mail the server refuses for good (a 5xx answer, a mail too big) is not retried: it moves to
keys.OUTBOX_FAILED with its error, listed by `livechat transcript outbox` and shown in the
supervisor view, and is deleted with its ticket (retention, erasure).

Keys: keys.OUTBOX (zset mail_id -> next attempt time), keys.OUTBOX_FAILED (zset mail_id ->
when it failed for good), keys.outbox_mail(id) (hash: message, sender, rcpt, ref, kind, about,
attempts, last_error, created_at, failed_at), keys.OUTBOX_CHANNEL (pub/sub wake-up on enqueue).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgpack
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from chat import keys
from chat.store import publish as bus_publish
from chat.store import is_cluster, lease_due
from chat.cancellation import raise_if_cancelled
from chat.runtime import Runtime
from transcripts.delivery import Backend, backend_for
from transcripts.mailer import OutgoingMail
from transcripts.smtp import is_permanent

log = logging.getLogger("livechat.outbox")

BACKOFF_BASE = 1.0      # seconds before the first retry; doubles per failed attempt
BACKOFF_CAP = 600.0     # never wait longer than this between attempts
LEASE = 120.0           # a claimed mail is another worker's again after this (longer than a send)
BATCH = 16              # mails claimed (and sent concurrently) per round
MAX_IDLE = 5.0          # longest sleep without a wake-up (covers a missed pub/sub message)
LISTEN_SLICE = 1.0      # longest single pub/sub read, so a cancelled listener notices

# KEYS[1] mail hash; ARGV error, now -> attempts so far (0: the mail is gone)
FAILED_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'last_error', ARGV[1], 'last_attempt', ARGV[2])
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'failed_at', ARGV[2]) end
return n
"""

def queue_mail(pipe: Pipeline, mail: OutgoingMail, now: float) -> None:
    """Add the commands that store one mail to a ticket's transaction (MULTI on the ticket's
    slot: the mail hash, the ticket's list of mails, and the follow-up that puts it in the
    outbox's queue, which lives in another slot). The caller finishes the change
    (transcripts.tickets.finish), which queues it; after a crash the repair sweep does."""
    pipe.hset(
        keys.outbox_mail(mail.mail_id),
        mapping={
            "message": mail.data,
            "sender": mail.sender,
            "rcpt": msgpack.packb(list(mail.recipients)),
            "ref": mail.ref,
            "kind": mail.kind,
            "about": mail.about,
            "attempts": 0,
            "last_error": "",
            "created_at": repr(now),
        },
    )
    pipe.sadd(keys.ticket_mails(mail.ref), mail.mail_id)
    pipe.rpush(keys.ticket_todo(mail.ref), msgpack.packb({"mail": mail.mail_id, "at": now}))


async def put_in_queue(redis: Redis, mail_id: str, at: float) -> None:
    """A stored mail's place in the outbox's queue (its own slot), and the workers woken.
    Idempotent: a mail already queued keeps its next attempt; one delivered meanwhile (its hash
    gone) is dropped by the worker that claims it."""
    await redis.zadd(keys.OUTBOX, {mail_id: at}, nx=True)
    await bus_publish(redis, keys.OUTBOX_CHANNEL, b"queued")


async def delete_mails(redis: Redis, mail_ids: list[str]) -> int:
    """Remove queued (or failed) mails (erasure, retention); returns how many there were.
    The mails themselves go first: a crash before the queues are cleaned leaves ids whose
    mail is gone, which the worker drops, never a mail that nothing lists."""
    if not mail_ids:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        for mail_id in mail_ids:
            pipe.delete(keys.outbox_mail(mail_id))
            pipe.srem(keys.ticket_mails(mail_id.partition(".")[0]), mail_id)
        await pipe.execute()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zrem(keys.OUTBOX, *mail_ids)
        pipe.zrem(keys.OUTBOX_FAILED, *mail_ids)
        result = await pipe.execute()
    return int(result[0]) + int(result[1])


async def queued(redis: Redis) -> list[dict[str, Any]]:
    """Every queued mail with its next attempt, attempts and last error (not its content)."""
    return await _describe(redis, await redis.zrange(keys.OUTBOX, 0, -1, withscores=True))


async def failed_mails(redis: Redis, limit: int | None = None) -> list[dict[str, Any]]:
    """Mails that failed for good, newest first (``due`` is when), with their last error."""
    return await _describe(redis, await redis.zrevrange(keys.OUTBOX_FAILED, 0, -1 if limit is None else limit - 1,
                                                       withscores=True))


async def _describe(redis: Redis, entries: list[tuple[bytes, float]]) -> list[dict[str, Any]]:
    fields = ["ref", "kind", "about", "attempts", "last_error"]
    async with redis.pipeline(transaction=False) as pipe:
        for raw_id, _ in entries:
            pipe.hmget(keys.outbox_mail(raw_id.decode()), fields)
        rows = await pipe.execute() if entries else []
    out = []
    for (raw_id, due), values in zip(entries, rows):
        ref, kind, about, attempts, error = (v.decode() if v is not None else "" for v in values)
        out.append({"id": raw_id.decode(), "due": due, "ref": ref, "kind": kind, "about": about,
                    "attempts": int(attempts or 0), "last_error": error})
    return out


class Outbox:
    """The scripts, bound to one Redis client."""

    def __init__(self, redis: Redis):
        self.redis = redis
        self.failed_script = redis.register_script(FAILED_SCRIPT)

    async def claim(self, now: float, lease: float = LEASE, limit: int = BATCH) -> list[str]:
        ids = await lease_due(self.redis, keys.OUTBOX, now, now + lease, limit)
        return [i.decode() for i in ids]

    async def delivered(self, mail_id: str) -> None:
        """The mail (its slot: the ticket's) first, then its queue entry: a crash between
        leaves an id whose mail is gone, dropped by the next claim, never a second send."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.outbox_mail(mail_id))
            pipe.srem(keys.ticket_mails(mail_id.partition(".")[0]), mail_id)
            await pipe.execute()
        await self.redis.zrem(keys.OUTBOX, mail_id)

    async def failed(self, mail_id: str, error: str, now: float, base: float, cap: float) -> float | None:
        """Count the attempt on the mail, then move its next attempt in the queue (a crash
        between leaves the claim's lease, so it is tried again when the lease ends)."""
        attempts = int(await self.failed_script(keys=[keys.outbox_mail(mail_id)], args=[error[:500], repr(now), "0"]))
        if not attempts:
            await self.redis.zrem(keys.OUTBOX, mail_id)
            return None
        due = now + min(cap, base * 2 ** (attempts - 1))
        await self.redis.zadd(keys.OUTBOX, {mail_id: due}, xx=True)
        return due

    async def gave_up(self, mail_id: str, error: str, now: float) -> None:
        """Record the failure on the mail, then move it from the queue to the failed list in one
        step of the outbox's slot (a crash between: tried once more when the lease ends)."""
        recorded = int(await self.failed_script(keys=[keys.outbox_mail(mail_id)], args=[error[:500], repr(now), "1"]))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(keys.OUTBOX, mail_id)
            if recorded:
                pipe.zadd(keys.OUTBOX_FAILED, {mail_id: now})
            await pipe.execute()


def _outbox(rt: Runtime) -> Outbox:
    return Outbox(rt.redis)


async def _send_one(rt: Runtime, box: Outbox, backend: Backend, mail_id: str, base: float, cap: float) -> bool:
    raw = await rt.redis.hmget(keys.outbox_mail(mail_id), ["message", "sender", "rcpt"])
    if raw[0] is None:  # erased while queued
        await rt.redis.zrem(keys.OUTBOX, mail_id)
        return False
    message, sender, rcpt = raw[0], (raw[1] or b"").decode(), msgpack.unpackb(raw[2] or b"\x90")
    try:
        await backend.send(message, sender, rcpt)
    except asyncio.CancelledError:
        raise  # the lease runs out and another worker (or this one, restarted) sends it
    except Exception as exc:  # noqa: BLE001 - any other delivery failure means: try again later
        error = f"{type(exc).__name__}: {exc}"
        if is_permanent(exc):
            await box.gave_up(mail_id, error, rt.clock())
            log.error("mail %s refused for good (%s); not retried: see `livechat transcript outbox`", mail_id, error)
            return False
        due = await box.failed(mail_id, error, rt.clock(), base, cap)
        log.warning("mail %s not delivered (%s); next attempt in %.1fs", mail_id, error,
                    (due - rt.clock()) if due else 0.0)
        return False
    await box.delivered(mail_id)
    log.info("mail %s delivered via %s", mail_id, backend.describe())
    return True


async def drain_once(
    rt: Runtime,
    *,
    backend: Backend | None = None,
    base_delay: float | None = None,
    cap: float | None = None,
    lease: float = LEASE,
) -> int:
    """Claim every mail due now (one batch), try to send each; return how many went out."""
    backend = backend or backend_for(rt.settings)
    box = _outbox(rt)
    ids = await box.claim(rt.clock(), lease)
    if not ids:
        return 0
    base = BACKOFF_BASE if base_delay is None else base_delay
    results = await asyncio.gather(*(_send_one(rt, box, backend, i, base, BACKOFF_CAP if cap is None else cap) for i in ids))
    return sum(results)


async def _seconds_to_next(rt: Runtime, max_idle: float) -> float:
    first = await rt.redis.zrange(keys.OUTBOX, 0, 0, withscores=True)
    if not first:
        return max_idle
    return min(max(first[0][1] - rt.clock(), 0.0), max_idle)


class Wakeup:
    """Listens on keys.OUTBOX_CHANNEL in its own task and sets an event when a mail is queued.

    The listener reads with a short timeout and checks between reads whether it is being
    cancelled: Python 3.11's asyncio.timeout (inside redis-py) can turn a cancel that lands as
    the timeout fires into a quiet timeout, and a read without any timeout could then block a
    cancelled listener forever. The worker waits on the event with asyncio.wait."""

    def __init__(self, redis: Redis, retry: float = MAX_IDLE):
        self.redis = redis
        self.retry = retry
        self.event = asyncio.Event()
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._listen(), name="outbox-wakeup")

    async def _listen(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            sharded = is_cluster(self.redis)  # a cluster's publishers use SPUBLISH (chat.bus.publish)
            try:
                if sharded:
                    await pubsub.ssubscribe(keys.OUTBOX_CHANNEL)
                else:
                    await pubsub.subscribe(keys.OUTBOX_CHANNEL)
                self.event.set()  # (re)subscribed: look at the outbox once, something may have been missed
                while True:
                    raise_if_cancelled()
                    if sharded:
                        message = await pubsub.get_sharded_message(ignore_subscribe_messages=True,
                                                                   timeout=LISTEN_SLICE)
                    else:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=LISTEN_SLICE)
                    if message:
                        self.event.set()
            except (RedisError, OSError) as exc:
                log.warning("outbox: wake-up channel lost (%s); polling every %.0fs until it is back", exc, self.retry)
            finally:
                try:
                    await pubsub.aclose()
                except (RedisError, OSError):
                    pass
            raise_if_cancelled()
            await asyncio.sleep(self.retry)

    async def wait(self, seconds: float) -> None:
        """Return after ``seconds``, or at once if a mail was queued since the last wait."""
        if not self.event.is_set() and seconds > 0:
            waiter = asyncio.ensure_future(self.event.wait())
            try:
                await asyncio.wait({waiter}, timeout=seconds)
            finally:
                waiter.cancel()
        self.event.clear()

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.wait({self.task}, timeout=LISTEN_SLICE * 2)  # bounded: stopping must not hang


async def outbox_loop(
    rt: Runtime,
    *,
    backend: Backend | None = None,
    base_delay: float | None = None,
    cap: float | None = None,
    max_idle: float = MAX_IDLE,
) -> None:
    """Deliver queued mail until cancelled. Sleeps until the earliest attempt is due or a new
    mail is announced; survives Redis and SMTP outages (logs, waits, tries again)."""
    if backend is None:
        try:
            backend = backend_for(rt.settings)
        except ValueError as exc:
            log.error("outbox: %s; mail is NOT being delivered (it stays queued)", exc)
            raise
    log.info("outbox: delivering via %s", backend.describe())
    wakeup = Wakeup(rt.redis, max_idle)
    wakeup.start()
    try:
        while True:
            raise_if_cancelled()
            try:
                while await drain_once(rt, backend=backend, base_delay=base_delay, cap=cap):
                    raise_if_cancelled()
                wait = await _seconds_to_next(rt, max_idle)
            except (RedisError, OSError) as exc:
                log.warning("outbox: redis unavailable (%s); retrying in %.0fs", exc, max_idle)
                wait = max_idle
            # redis-py and aiosmtplib may turn a cancellation into their own error (or a quiet
            # return): never go to sleep for minutes on a stop request.
            raise_if_cancelled()
            await wakeup.wait(wait)
    finally:
        await wakeup.close()
