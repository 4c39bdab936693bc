"""This process's sockets and what they are watching.

The hub fans pub/sub events out to local sockets, pulls waiting chats for its local agents
when capacity frees up (no polling), keeps waiting visitors' places in line current
(coalesced, computed from sorted-set ranks), and refreshes presence so that other
processes can tell a vanished socket from a live one.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING, Any, Protocol

import msgpack
from redis.exceptions import RedisError

from chat import frames, keys, lifecycle
from chat.batching import ScriptBatcher
from chat.cancellation import raise_if_cancelled
from chat.chatlog import ChatLog
from chat.queue import decode_agents, read_agents, topic_key
from chat.bus import Bus
from chat.runtime import Runtime
from chat.stats import MessageCounter

if TYPE_CHECKING:
    from agents.accounts import Account
    from chat.agent_socket import AgentConnection
    from chat.visitor_socket import VisitorConnection

log = logging.getLogger("livechat.hub")

_AGENT_PREFIX, _AGENT_SUFFIX = keys.agent_channel("\0").split("\0")
POSITION_INTERVAL = 0.3  # at most ~3 position frames a second per visitor
POSITION_SLICE = 256     # waiting sockets updated between two turns of the event loop


class Presence:
    """Presence marks made as this process's sockets come and go (an agent connects or
    leaves, a waiting visitor resumes or leaves: who, and when last seen), written together:
    marks made while a write is in flight wait for it and then go out in one pipeline, one
    ZADD per sorted set, so a thousand sockets closing at once cost one round trip, not a
    thousand. The sweeps read the same sorted sets as before (chat/duties.py); a mark is
    late by one round trip at most, against grace periods of many heartbeats. The heartbeat
    itself writes every socket's mark in one pipeline a beat (Hub.heartbeat)."""

    def __init__(self, redis: Any):
        self.redis = redis
        self._pending: dict[str, dict[str, float]] = {}
        self._written: asyncio.Future | None = None
        self._flusher: asyncio.Task | None = None

    def mark(self, key: str, member: str, when: float) -> "asyncio.Future[None]":
        """Set member's time in the sorted set key (keys.VISITORS_SEEN or AGENTS_SEEN) with
        the next write; the future ends when it is stored, or with the write's error."""
        self._pending.setdefault(key, {})[member] = when
        if self._written is None:
            self._written = asyncio.get_running_loop().create_future()
            self._written.add_done_callback(_retrieved)  # nobody need wait for a mark
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="presence")
        return self._written

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, written = self._pending, self._written
                self._pending, self._written = {}, None
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for key, marks in batch.items():
                            pipe.zadd(key, marks)
                        await pipe.execute()
                except Exception as exc:
                    if written is not None and not written.done():
                        written.set_exception(exc)
                    continue
                except BaseException:
                    if written is not None and not written.done():
                        written.cancel()
                    raise
                if written is not None and not written.done():
                    written.set_result(None)
        finally:
            self._flusher = None


def _retrieved(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


class ChatListener(Protocol):
    def push(self, event: dict[str, Any], raw: bytes) -> None: ...
    def resync(self) -> None: ...


class Hub:
    def __init__(self, rt: Runtime, bus: Bus):
        self.rt = rt
        self.bus = bus
        self.queue = rt.queue
        self.log = ChatLog(rt.redis, ScriptBatcher(rt.redis))
        self.presence = Presence(rt.redis)
        self.messages = MessageCounter()
        self.chat_listeners: dict[str, set[ChatListener]] = {}
        self.agents: dict[str, set["AgentConnection"]] = {}
        self.visitors: dict[str, set["VisitorConnection"]] = {}
        self.waiting: dict[str, set["VisitorConnection"]] = {}
        self.addresses: dict[str, int] = {}  # hashed client address -> open visitor sockets here
        self.supervisors = 0
        self._dirty = asyncio.Event()
        self._work = False
        self._tasks: list[asyncio.Task] = []
        self._dispatching: asyncio.Task | None = None
        self._dispatch_again = False
        self._resyncing: asyncio.Task | None = None
        self._profiles: dict[str, dict[str, Any]] | None = None  # agents' routing profiles (agent_profiles)
        self._profiles_changes = 0
        # Where the line changed since the last places update (chat/lifecycle.py queue_news):
        # language -> the lowest score that joined, left or moved; _moved_all: anywhere.
        self._moved: dict[str, float] = {}
        self._moved_all = True
        self._eta_basis: tuple[Any, ...] | None = None  # what the ETAs sent last were computed from (aht, agents, capacity)

    # --- life ------------------------------------------------------------------------

    async def start(self) -> None:
        bus = self.bus
        await bus.subscribe(keys.QUEUE_CHANNEL, self._on_queue_event)
        await bus.subscribe(keys.TICKETS_CHANNEL, self._on_ticket_event)
        bus.on_reconnect(self._resync_all)
        self._tasks = [
            asyncio.create_task(self._positions_loop(), name="positions"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def connection_counts(self) -> dict[str, int]:
        return {
            "visitor": sum(len(v) for v in self.visitors.values()),
            "agent": sum(len(a) for a in self.agents.values()),
            "supervisor": self.supervisors,
        }

    def all_connections(self) -> list:
        conns: list = [c for s in self.visitors.values() for c in s]
        conns += [c for s in self.agents.values() for c in s]
        return conns

    # --- chat events -----------------------------------------------------------------

    async def watch(self, chat_id: str, listener: ChatListener) -> None:
        listeners = self.chat_listeners.setdefault(chat_id, set())
        listeners.add(listener)
        await self.bus.subscribe(keys.chat_channel(chat_id), self._on_chat_event)

    async def unwatch(self, chat_id: str, listener: ChatListener) -> None:
        listeners = self.chat_listeners.get(chat_id)
        if listeners is None:
            return
        listeners.discard(listener)
        if not listeners:
            del self.chat_listeners[chat_id]
            await self.bus.unsubscribe(keys.chat_channel(chat_id), self._on_chat_event)

    def _on_chat_event(self, channel: str, data: bytes) -> None:
        chat_id = channel[channel.index("{") + 1 : channel.rindex("}")]
        listeners = self.chat_listeners.get(chat_id)
        if not listeners:
            return
        event = msgpack.unpackb(data)
        for listener in list(listeners):
            listener.push(event, data)

    def _resync_all(self) -> None:
        self.agents_changed()  # announcements may have been lost with the connection
        for listeners in self.chat_listeners.values():
            for listener in list(listeners):
                listener.resync()
        if self._resyncing is None:
            self._resyncing = asyncio.create_task(self._resync_states(), name="resync-states")
        self.kick_dispatch()
        self._moved_all = True  # news of the line was lost too
        self._dirty.set()
        self._to_agents({"type": frames.TICKET_CHANGED, "ref": None})  # ticket news was lost: look again

    async def _resync_states(self) -> None:
        """Events published while the bus was away (a chat assigned, closed, transferred)
        reached nobody: every socket compares its view with the records in Redis."""
        try:
            for conn in self.all_connections():
                await conn.resync_state()
        except RedisError:
            log.warning("state resync stopped: redis unavailable (the next reconnect runs it again)")
        finally:
            self._resyncing = None

    # --- agents and dispatch ---------------------------------------------------------

    async def add_agent(self, conn: "AgentConnection") -> None:
        conns = self.agents.setdefault(conn.account.username, set())
        conns.add(conn)
        if len(conns) == 1:
            await self.bus.subscribe(keys.agent_channel(conn.account.username), self._on_agent_event)

    async def remove_agent(self, conn: "AgentConnection") -> None:
        username = conn.account.username
        conns = self.agents.get(username)
        if conns is None:
            return
        conns.discard(conn)
        if not conns:
            del self.agents[username]
            await self.bus.unsubscribe(keys.agent_channel(username), self._on_agent_event)
        try:
            await self.presence.mark(keys.AGENTS_SEEN, username, self.rt.clock())
        except RedisError:
            pass

    def _on_agent_event(self, channel: str, data: bytes) -> None:
        username = channel[len(_AGENT_PREFIX) : len(channel) - len(_AGENT_SUFFIX)]
        event = msgpack.unpackb(data)
        for conn in list(self.agents.get(username, ())):
            conn.on_agent_event(event)

    def kick_dispatch(self) -> None:
        """Offer waiting chats to local agents with room; runs at most once at a time."""
        self._dispatch_again = True
        if self._dispatching is None:
            self._dispatching = asyncio.create_task(self._dispatch())

    async def _dispatch(self) -> None:
        try:
            while self._dispatch_again:
                self._dispatch_again = False
                hungry = [next(iter(c)) for c in self.agents.values() if c and next(iter(c)).wants_chats()]
                hungry.sort(key=lambda conn: len(conn.feeds))
                for conn in hungry:
                    await self.fill_agent(conn)
        except RedisError:
            log.warning("dispatch failed: redis unavailable")
        finally:
            self._dispatching = None

    async def fill_agent(self, conn: "AgentConnection") -> None:
        """Claim chats for one agent until it is full or nothing it can serve waits."""
        account, skills = conn.account, conn.skills()
        while True:
            chat_id = await self.queue.claim(skills, self.rt.clock())
            if chat_id is None:
                return
            await self.assign_claimed(account, chat_id)

    async def assign_claimed(self, account: "Account", chat_id: str) -> None:
        """Record a successful claim. The claim is the decision: this process's sockets of
        the agent open the chat while its record is updated and the news published; they
        show it to the agent once the record names the agent (its messages are stored only
        then, chat/chatlog.py)."""
        recorded = asyncio.ensure_future(lifecycle.assigned(self.rt, chat_id, account.username, account.name))
        for local in list(self.agents.get(account.username, ())):
            local.open_assigned(chat_id, recorded)
        await recorded

    def _on_queue_event(self, channel: str, data: bytes) -> None:
        event = msgpack.unpackb(data)
        if event.get("agents"):
            self.agents_changed()
        if event.get("work"):
            self.kick_dispatch()
        self._line_moved(event.get("moved"))
        self._dirty.set()

    def _line_moved(self, moved: Any) -> None:
        """Note where the line changed (chat/lifecycle.py queue_news): the next places update
        looks up only the chats at or behind that point of their language's line."""
        if not isinstance(moved, list):
            self._moved_all = True
            return
        for item in moved:
            try:
                lang, score = item
                floor = -math.inf if score is None else float(score)
            except (TypeError, ValueError):
                self._moved_all = True
                return
            if floor < self._moved.get(lang, math.inf):
                self._moved[lang] = floor

    # --- agents' profiles ------------------------------------------------------------

    async def agent_profiles(self) -> dict[str, dict[str, Any]]:
        """Every agent's routing profile and status, from memory: read from Redis only after a
        change was announced (chat.queue.AGENTS_CHANGED, by whoever wrote one), after the bus
        came back (announcements may have been lost meanwhile) and with every heartbeat,
        instead of on every place-in-line update and every hello. It only answers "can anyone
        serve this?" and the ETAs: what an agent may take is decided in Redis by the claim."""
        profiles = self._profiles
        if profiles is None:
            changes = self._profiles_changes
            profiles = await read_agents(self.rt.redis)
            if changes == self._profiles_changes:  # no change was announced while reading
                self._profiles = profiles
        return profiles

    def agents_changed(self) -> None:
        """Agents' profiles changed (here or on another process): read them again when needed."""
        self._profiles = None
        self._profiles_changes += 1

    # --- tickets ------------------------------------------------------------------------

    def _on_ticket_event(self, channel: str, data: bytes) -> None:
        """One subscription per hub: a ticket was made or changed (transcripts/desk.py), or
        who has one open changed (chat/ticket_presence.py); every agent dashboard here hears it."""
        event = msgpack.unpackb(data)
        kind, ref = event.get("type"), event.get("ref")
        if not isinstance(ref, str):
            return
        if kind == frames.EVENT_TICKET:
            self._to_agents({"type": frames.TICKET_CHANGED, "ref": ref})
        elif kind == frames.EVENT_VIEWERS:
            self._to_agents({"type": frames.TICKET_VIEWERS, "ref": ref, "viewers": event.get("viewers") or []})

    def _to_agents(self, frame: dict[str, Any]) -> None:
        for conns in list(self.agents.values()):
            for conn in list(conns):
                conn.send(frame)

    # --- waiting visitors: place in line and ETA ------------------------------------

    def claim_address(self, who: str, limit: int) -> bool:
        """Count one more visitor socket from a hashed client address on this process; False
        (nothing counted) past ``limit`` (0 = none): one address cannot hold sockets without end."""
        count = self.addresses.get(who, 0)
        if limit and count >= limit:
            return False
        self.addresses[who] = count + 1
        return True

    def release_address(self, who: str) -> None:
        count = self.addresses.pop(who, 0) - 1
        if count > 0:
            self.addresses[who] = count

    def add_visitor(self, conn: "VisitorConnection") -> None:
        self.visitors.setdefault(conn.chat_id, set()).add(conn)

    def remove_visitor(self, conn: "VisitorConnection") -> None:
        conns = self.visitors.get(conn.chat_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.visitors[conn.chat_id]
        self.set_waiting(conn, False)

    def set_waiting(self, conn: "VisitorConnection", waiting: bool) -> None:
        if waiting:
            self.waiting.setdefault(conn.chat_id, set()).add(conn)
            self._dirty.set()
        else:
            conns = self.waiting.get(conn.chat_id)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del self.waiting[conn.chat_id]

    async def _positions_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.update_positions()
            except RedisError:
                self._moved_all = True  # what this update should have looked up waits for the next
                raise_if_cancelled()
                log.warning("could not update queue positions: redis unavailable")
            except Exception:
                self._moved_all = True
                log.exception("queue position update failed")
            await asyncio.sleep(POSITION_INTERVAL)

    async def update_positions(self) -> None:
        """Send each waiting socket its place and ETA when either changed. Places are looked
        up (sorted-set ranks) only for the chats at or behind a point where their line
        changed since the last update, and for sockets that have none yet: a chat that joins
        at the back moves nobody, a claim moves only those behind it. ETAs are computed
        again for everyone only when what they depend on changed (the average handling time,
        the agents)."""
        moved, everything = self._moved, self._moved_all
        self._moved, self._moved_all = {}, False
        if not self.waiting:
            return
        stale: list[tuple[str, str]] = []
        for chat_id, conns in self.waiting.items():
            conn = next(iter(conns))
            floor = moved.get(conn.lang)
            if everything or (floor is not None and conn.score >= floor) or any(c.position is None for c in conns):
                stale.append((chat_id, conn.lang))
        positions, aht = await self.queue.positions(stale)
        agents = await self.agent_profiles()
        capacity: dict[str, int] = {}
        for profile in agents.values():
            if profile.get("status") == frames.AGENT_ONLINE:
                for lang in profile.get("langs", ()):
                    capacity[lang] = capacity.get(lang, 0) + int(profile.get("max_chats", 1))
        basis = (aht, agents, capacity)
        looked_up = {chat_id: position for (chat_id, _), position in zip(stale, positions)}
        last = self._eta_basis
        if last is None or last[0] != aht or last[1] is not agents or last[2] != capacity:
            self._eta_basis = basis  # every ETA (and whether anyone can serve) may have changed
            todo = list(self.waiting)
        else:
            todo = list(looked_up)
        servable: dict[tuple[str, str], bool] = {}  # one look at the agents per (lang, topic), not per visitor
        for n, chat_id in enumerate(todo):
            if n and n % POSITION_SLICE == 0:
                await asyncio.sleep(0)  # thousands of waiting sockets: let assignments and messages through
            conns = self.waiting.get(chat_id)
            if not conns:
                continue
            conn = next(iter(conns))
            position = looked_up[chat_id] if chat_id in looked_up else conn.position
            if position is None:
                continue
            key = (conn.lang, conn.topic_key)
            if key not in servable:
                servable[key] = self._someone_can_serve(agents, conn.lang, conn.topic_key)
            if not servable[key]:
                await lifecycle.go_offline(self.rt, chat_id, frames.OFFLINE_NO_AGENTS)
                continue
            cap = capacity.get(conn.lang, 0)
            eta = int(math.ceil(position * aht / cap)) if aht and cap else None
            for c in list(conns):
                c.update_position(position, eta)

    @staticmethod
    def _someone_can_serve(agents: dict[str, dict[str, Any]], lang: str, topic: str) -> bool:
        for profile in agents.values():
            if profile.get("status") != frames.AGENT_ONLINE or lang not in profile.get("langs", ()):
                continue
            topics = profile.get("topics") or ()
            if not topics or topic == "_" or topic in topics:
                return True
        return False

    async def someone_can_serve(self, lang: str, topic: str | None, emergency: bool) -> bool:
        return self._someone_can_serve(await self.agent_profiles(), lang, topic_key(topic, emergency))

    # --- presence ----------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                anyone_waiting = await self.heartbeat()
                await self.messages.flush(self.rt.redis)
                if anyone_waiting and any(c and next(iter(c)).wants_chats() for c in self.agents.values()):
                    self.kick_dispatch()  # safety net: a lost doorbell costs one beat, never a chat
            except RedisError:
                raise_if_cancelled()
            await asyncio.sleep(self.rt.config.timing.heartbeat)

    async def heartbeat(self) -> bool:
        """Refresh presence and re-check agent sessions; True if any chat is waiting."""
        now = self.rt.clock()
        changes = self._profiles_changes
        async with self.rt.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.QUEUE_ALL)
            pipe.hgetall(keys.AGENTS)  # the agents' profiles, afresh once a beat (a lost announcement costs one beat)
            if self.agents:
                pipe.zadd(keys.AGENTS_SEEN, {u: now for u in self.agents})
            watched = [c for c, conns in self.visitors.items() if conns and next(iter(conns)).needs_presence()]
            if watched:
                pipe.zadd(keys.VISITORS_SEEN, {c: now for c in watched})
            agent_conns = [c for conns in self.agents.values() for c in conns if c.session_id]
            for conn in agent_conns:
                pipe.exists(keys.session(conn.session_id))
            results = await pipe.execute()
        if changes == self._profiles_changes:
            self._profiles = decode_agents(results[1])
        for conn, alive in zip(agent_conns, results[len(results) - len(agent_conns):]):
            if not alive:
                conn.cut_off(frames.CLOSE_POLICY, "session ended: log in again")
        return results[0] > 0
