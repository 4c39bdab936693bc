"""Background duties run by every `livechat serve` and `livechat worker`: presence sweeps,
timers, the mail outbox, the repair of ticket changes a crash cut short, and retention. Each claims its work atomically in Redis, so any
number of processes may run them at once without doing anything twice."""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from chat import frames, keys, lifecycle, rollups, timers
from chat.cancellation import raise_if_cancelled
from chat.chats import load_chat
from chat.runtime import Runtime

log = logging.getLogger("livechat.duties")

TIMER_INTERVAL = 0.2
RETENTION_INTERVAL = 3600.0
STOP_WAIT = 3.0  # seconds stop() waits for the duties to end
DEPTH_INTERVAL = 60.0
TICKETS_INTERVAL = 60.0  # how often tickets waiting for the customer are checked for pending_days
SWEEP_RETRY = 30.0  # seconds before a gone visitor whose chat could not be ended is swept again

# Take a visitor's presence entry only if it is still stale (one process wins).
VISITOR_GONE_SCRIPT = """
local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not seen or tonumber(seen) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""


class Duties:
    def __init__(self, rt: Runtime):
        self.rt = rt
        self.queue = rt.queue
        self._visitor_gone = rt.redis.register_script(VISITOR_GONE_SCRIPT)
        self._tasks: list[asyncio.Task] = []
        self._steady_since: float | None = None  # Redis has answered promptly since then
        self._last_contact: float | None = None

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._loop(self.sweep, lambda: self.rt.config.timing.heartbeat / 2), name="sweep"),
            asyncio.create_task(self._loop(self.fire_timers, lambda: TIMER_INTERVAL), name="timers"),
            asyncio.create_task(self._loop(self.retention, lambda: RETENTION_INTERVAL), name="retention"),
            asyncio.create_task(self._loop(self.queue_depth, lambda: DEPTH_INTERVAL), name="queue-depth"),
            asyncio.create_task(self._loop(self.tickets, self._tickets_interval), name="tickets"),
            asyncio.create_task(self._loop(self.repair, self._repair_interval), name="repair"),
        ]
        try:
            from transcripts.outbox import outbox_loop
        except ImportError:
            outbox_loop = None
        if outbox_loop:
            self._tasks.append(asyncio.create_task(outbox_loop(self.rt), name="outbox"))

    async def stop(self) -> None:
        """Cancel every duty and wait for them, bounded: shutdown must not hang on a duty
        that does not end (a hub or worker has seconds to exit after SIGTERM)."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=STOP_WAIT)
            for task in stuck:
                log.warning("duty %s did not stop within %.0fs; leaving it", task.get_name(), STOP_WAIT)

    async def _loop(self, duty, interval) -> None:
        while True:
            try:
                await duty()
            except asyncio.CancelledError:
                raise
            except RedisError as exc:
                log.warning("%s: redis unavailable (%s)", duty.__name__, exc)
            except Exception:
                log.exception("%s failed", duty.__name__)
            # A cancel caught above as a Redis error must still stop the loop, or stop() would
            # wait for the next round, an hour away for retention.
            raise_if_cancelled()
            await asyncio.sleep(interval())

    def _steady_for(self, started: float, finished: float) -> float:
        """How long Redis has answered this process promptly and without a break. While Redis
        was down (or this process stalled) every hub's heartbeats stopped as well, so a last
        heartbeat older than a grace period proves nothing until heartbeats have had a whole
        grace period to resume: without this, a Redis restart would send every connected
        agent's chats back to the queue and end every waiting visitor's chat."""
        timing = self.rt.config.timing
        slack = min(timing.agent_grace, timing.visitor_grace) / 2
        if (self._steady_since is None or self._last_contact is None or finished - started > slack
                or started - self._last_contact > timing.heartbeat / 2 + slack):
            self._steady_since = finished
        self._last_contact = finished
        return finished - self._steady_since

    async def sweep(self) -> None:
        """Agents and waiting visitors whose sockets have been gone past their grace period."""
        rt, now, timing = self.rt, self.rt.clock(), self.rt.config.timing
        cutoff = now - timing.agent_grace
        stale_agents = await rt.redis.zrangebyscore(keys.AGENTS_SEEN, "-inf", f"({cutoff}")
        stale_visitors = await rt.redis.zrangebyscore(keys.VISITORS_SEEN, "-inf", f"({now - timing.visitor_grace}")
        steady = self._steady_for(now, rt.clock())
        for raw in stale_agents if steady >= timing.agent_grace else ():
            username = raw.decode()
            requeued = await self.queue.agent_gone(username, cutoff)
            if requeued is None:
                continue
            log.info("agent %s gone past grace; %d chats back in the queue", username, len(requeued))
            await rollups.agent_offline(rt, username, cutoff)  # its time online ended when it was last seen
            for chat_id in requeued:  # its sockets, if a paused hub wakes up, are told `released`
                try:
                    await lifecycle.requeued(rt, chat_id, previous_agent=username)
                except RedisError:
                    raise
                except Exception:  # one chat must not keep the others from being told
                    log.exception("sweep: telling chat %s it is back in the queue failed", chat_id)
            await lifecycle.queue_changed(rt, work=True)
        cutoff = now - timing.visitor_grace
        for raw in stale_visitors if steady >= timing.visitor_grace else ():
            chat_id = raw.decode()
            if await self._visitor_gone(keys=[keys.VISITORS_SEEN], args=[chat_id, repr(cutoff)]):
                try:
                    chat = await load_chat(rt.redis, chat_id)
                    if chat and chat.get("status") in frames.WAITING_STATUSES:
                        await lifecycle.visitor_left(rt, chat_id)
                except Exception as exc:
                    # The presence entry is taken: put it back so that this chat is swept again
                    # later, and go on with the others.
                    await rt.redis.zadd(keys.VISITORS_SEEN, {chat_id: rt.clock() - timing.visitor_grace + SWEEP_RETRY})
                    if isinstance(exc, RedisError):
                        raise
                    log.exception("sweep: ending chat %s of a gone visitor failed; next attempt in %.0fs",
                                  chat_id, SWEEP_RETRY)

    async def fire_timers(self) -> None:
        """Handle each due deadline on its own: one that raises is logged with its chat and
        tried again with back-off, and the rest of the batch goes on (a failure used to stop
        the batch, and every deadline taken behind it waited out its lease again and again)."""
        for kind, chat_id, lease in await timers.pop_due(self.rt.redis, self.rt.clock()):
            try:
                await lifecycle.fire_timer(self.rt, kind, chat_id)
            except RedisError:
                await timers.schedule(self.rt.redis, kind, chat_id, self.rt.clock() + 1)
                raise
            except Exception:
                delay = await timers.failed(self.rt.redis, kind, chat_id, lease, self.rt.clock())
                log.exception("timer %s of chat %s failed; next attempt in %.0fs", kind, chat_id, delay)
                continue
            await timers.done(self.rt.redis, kind, chat_id, lease)

    async def queue_depth(self) -> None:
        """One point a minute for the supervisors' queue-depth chart, even when nobody watches."""
        from chat.snapshot import record_queue_depth

        await record_queue_depth(self.rt)

    def _tickets_interval(self) -> float:
        return min(TICKETS_INTERVAL, max(0.5, self.rt.config.tickets.pending_days * 86400 / 4))

    async def tickets(self) -> None:
        """Solve the tickets that waited for the customer past `[tickets] pending_days`."""
        from transcripts.desk import solve_stale_pending

        solved = await solve_stale_pending(self.rt)
        if solved:
            log.info("solved %d tickets that waited for the customer too long", len(solved))

    def _repair_interval(self) -> float:
        return max(0.2, min(60.0, self.rt.config.timing.repair_after / 2))

    async def repair(self) -> None:
        """Finish the ticket changes a crashed process left between two of their steps, more
        than `[timing] repair_after` seconds ago (transcripts/tickets.py says which steps):
        a new ticket's guard claimed, its mails put in the outbox's queue, report events
        counted, its index entries set from the ticket as it is."""
        try:
            from transcripts.tickets import repair
        except ImportError:
            return
        repaired = await repair(self.rt.redis, self.rt.clock(), self.rt.config.timing.repair_after)
        if repaired:
            log.info("repair: finished %d ticket changes left half done", len(repaired))

    async def retention(self) -> None:
        try:
            from transcripts.retention import purge_expired
        except ImportError:
            return
        purged = await purge_expired(self.rt, self.rt.clock())
        if purged:
            log.info("retention: purged %d expired chats and tickets", purged)
