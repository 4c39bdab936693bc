"""/ws/agent: an agent's live desk. Several chats at once, restored in full on reconnect."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgpack
from redis.exceptions import RedisError
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from agents.accounts import Account, load_account
from agents.sessions import read_session
from chat import chats, frames, keys, lifecycle, rollups, ticket_presence
from chat.chatlog import ChatGone
from chat.connection import Connection, origin_allowed
from chat.feed import ChatFeed
from chat.config import Limits
from chat.frames import FrameError
from chat.queue import AgentSkills, Claimed, NotHolder, read_agents, write_agent
from chat.runtime import Runtime
from chat.visitor_socket import masked

log = logging.getLogger("livechat.agent")


class AgentConnection(Connection):
    kind = "agent"

    def frame_limit(self, limits: Limits) -> tuple[float, float]:
        return limits.agent_frames_per_second, limits.agent_frame_burst

    def __init__(self, ws: WebSocket, rt: Runtime, account: Account, session_id: str = ""):
        super().__init__(ws, rt)
        self.account = account
        self.session_id = session_id
        self.status = frames.AGENT_AWAY
        self.feeds: dict[str, ChatFeed] = {}
        self.replied: set[str] = set()  # chats this socket wrote in (the first reply is recorded once)
        self.viewing: str | None = None  # the ticket this dashboard has open (ticket_viewing)
        self._closing: set[str] = set()  # chats this socket's handler is closing

    def skills(self) -> AgentSkills:
        account = self.account
        return AgentSkills(account.username, account.langs, account.topics, account.max_chats)

    def wants_chats(self) -> bool:
        return self.status == frames.AGENT_ONLINE and len(self.feeds) < self.account.max_chats

    # --- start ---------------------------------------------------------------------

    async def run(self) -> None:
        await self.accept()
        await self.serve(self.start())

    async def start(self) -> None:
        rt, account = self.rt, self.account
        agents = await read_agents(rt.redis)
        previous = agents.get(account.username, {}).get("status")
        # A new demo user should see chats arrive without looking for the status toggle.
        self.status = (previous if previous in frames.AGENT_CHOICES
                       else frames.AGENT_ONLINE if rt.demo else frames.AGENT_AWAY)
        self.hub.dispatch.agents_changed()  # until written, this hub reads profiles from Redis again
        await write_agent(rt.redis, account.username, {**account.profile(), "status": self.status})
        self.hub.dispatch.agents_changed()  # this hub at once; the others when the announcement reaches them
        await self.hub.presence.mark(keys.AGENTS_SEEN, account.username, rt.clock())
        if self.status == frames.AGENT_ONLINE:
            await rollups.agent_online(rt, account.username, rt.clock())
        await self.hub.registry.add_agent(self)
        held = sorted(c.decode() for c in await rt.redis.smembers(keys.agent_chats(account.username)))
        entries = []
        for chat_id in held:
            entry = await self._open_chat(chat_id)
            if entry:
                entries.append(entry)
        self.send({"type": frames.WELCOME, "agent": {**account.profile(), "status": self.status}, "chats": entries})
        for feed in self.feeds.values():
            feed.resume(catch_up=False)  # each was read after its subscription (_open_chat)
        await self.welcomed()
        if self.status == frames.AGENT_ONLINE:
            self.hub.dispatch.kick()

    async def _open_chat(self, chat_id: str) -> dict[str, Any] | None:
        """Watch a chat and describe it with its whole history; the feed stays paused until
        the caller has sent the description."""
        if chat_id in self.feeds:
            return None
        feed = ChatFeed(self.rt.redis, chat_id, 0, lambda f, raw, c=chat_id: self._on_message(c, f, raw),
                        lambda e, c=chat_id: self._on_event(c, e), self.room)
        self.feeds[chat_id] = feed
        # Subscribed first, then read: anything written after the read comes by pub/sub (the
        # feed stays paused until the caller resumes it, and drops what the read already
        # had), so no catch-up read of the log is needed after it.
        await self.hub.registry.watch(chat_id, feed)
        chat, history = await self._read_chat(chat_id)
        if not chat or chat.get("status") == frames.CHAT_CLOSED:
            await self._drop_chat(chat_id)
            return None
        feed.last_seq = len(history)
        now = self.rt.clock()
        entry = {
            "chat_id": chat_id,
            "visitor": chats.visitor_profile(chat),
            # a queued chat here is claimed and being recorded
            "status": frames.CHAT_ACTIVE if chat.get("status") == frames.CHAT_QUEUED else chat.get("status"),
            "history": history,
            "waited_s": round(float(chat.get("assigned_at") or now) - float(chat.get("arrived_at") or now), 1),
            "started_at": float(chat.get("created_at") or now),
        }
        if chat.get("verified") == "1":
            from transcripts.tickets import earlier_tickets

            earlier = await earlier_tickets(self.rt.redis, chat.get("sub", ""), chat.get("email", ""))
            entry["tickets"], entry["unverified_tickets"] = earlier["verified"], earlier["unverified"]
        return entry

    async def _read_chat(self, chat_id: str) -> tuple[dict[str, str] | None, list[dict[str, Any]]]:
        """The chat's record and its whole log, in one round trip."""
        async with self.rt.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.chat(chat_id))
            pipe.lrange(keys.chat_log(chat_id), 0, -1)
            raw_chat, raw_log = await pipe.execute()
        return chats.decode_chat(raw_chat), [msgpack.unpackb(item) for item in raw_log]

    async def _drop_chat(self, chat_id: str) -> None:
        feed = self.feeds.pop(chat_id, None)
        if feed:
            feed.close()
            await self.hub.registry.unwatch(chat_id, feed)

    # --- events ------------------------------------------------------------------------

    def _on_message(self, chat_id: str, frame: dict[str, Any] | None, raw: bytes) -> None:
        if frame is None:
            frame = msgpack.unpackb(raw)
        self.send({**frame, "chat_id": chat_id})

    def _on_event(self, chat_id: str, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == frames.TYPING:
            if event.get("from") == frames.FROM_VISITOR:
                self.send({"type": frames.TYPING, "chat_id": chat_id, "active": bool(event.get("active"))})
        elif kind == frames.READ:
            self.send({"type": frames.READ, "chat_id": chat_id, "seq": event.get("seq", 0)})
        elif kind == frames.CLOSED:
            feed = self.feeds.pop(chat_id, None)
            if feed is None:  # already told (the closing socket does not wait for the echo)
                return
            self.send(frames.closed(event["reason"], event.get("ref"), chat_id=chat_id))
            feed.close()
            asyncio.create_task(self._after_close(chat_id, feed, kick=chat_id not in self._closing))

    async def _after_close(self, chat_id: str, feed: ChatFeed, kick: bool = True) -> None:
        if kick and self.wants_chats():
            self.hub.dispatch.kick()
        await self.hub.registry.unwatch(chat_id, feed)

    def on_agent_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == frames.ASSIGNED:
            if event["chat_id"] not in self.feeds:  # else opened already (this hub claimed it)
                asyncio.create_task(self._assigned(event["chat_id"], event.get("transferred_from")))
        elif kind == frames.RELEASED:
            asyncio.create_task(self._released(event["chat_id"], event.get("to")))
        elif kind == frames.EVENT_REVOKED:  # the account was disabled, removed, or changed role or password
            self.cut_off(frames.CLOSE_POLICY, "session ended: log in again")
        elif kind == frames.STATUS and event["status"] != self.status:
            self.status = event["status"]
            self.send({"type": frames.STATUS, "status": self.status})

    async def catch_up_state(self) -> None:
        """Catch up with chats given to or taken from this agent while pub/sub was away."""
        held = {m.decode() for m in await self.rt.redis.smembers(keys.agent_chats(self.account.username))}
        for chat_id in held - set(self.feeds):
            await self._assigned(chat_id, None)
        for chat_id in set(self.feeds) - held:
            chat = await chats.load_chat(self.rt.redis, chat_id)
            if chat and chat.get("status") == frames.CHAT_CLOSED:
                self._on_event(chat_id, frames.closed(chat.get("closed_reason", ""), chat.get("ticket")))
            else:
                await self._released(chat_id, None)

    def open_assigned(self, chat_id: str, recorded: "asyncio.Future[None]") -> "asyncio.Task[None]":
        """This hub claimed the chat for this agent: open it now, show it once recorded."""
        return asyncio.create_task(self._assigned(chat_id, None, recorded))

    async def _assigned(self, chat_id: str, transferred_from: str | None,
                        recorded: "asyncio.Future[None] | None" = None) -> None:
        try:
            entry = await self._open_chat(chat_id)
        except RedisError:
            log.warning("could not load assigned chat %s", chat_id)
            return
        if entry and recorded is not None:
            await asyncio.wait([recorded])  # its failure is the claimer's to report
        if entry:
            frame = {"type": frames.ASSIGNED, **entry}
            if transferred_from:
                frame["transferred_from"] = transferred_from
            self.send(frame)
            self.feeds[chat_id].resume(catch_up=False)  # read after its subscription (_open_chat)

    async def _released(self, chat_id: str, to: str | None) -> None:
        if chat_id in self.feeds:
            await self._drop_chat(chat_id)
            frame = {"type": frames.RELEASED, "chat_id": chat_id}
            if to:
                frame["to"] = to
            self.send(frame)
            if self.wants_chats():
                self.hub.dispatch.kick()

    # --- inbound frames ------------------------------------------------------------

    def _held(self, frame: dict[str, Any]) -> str:
        chat_id = frame.get("chat_id")
        if not isinstance(chat_id, str) or chat_id not in self.feeds:
            raise FrameError(frames.NOT_ALLOWED, "you do not hold this chat")
        return chat_id

    async def handle(self, frame: dict[str, Any]) -> None:
        try:
            await self._handle(frame)
        except NotHolder as exc:
            # Redis says another agent holds it now (this socket missed the news, e.g. its hub
            # was paused past agent_grace): nothing was stored or changed; drop it here too.
            await self._released(str(exc), None)
            raise FrameError(frames.NOT_ALLOWED, "you no longer hold this chat") from None

    async def _handle(self, frame: dict[str, Any]) -> None:
        handler = self._handlers.get(frame["type"])
        if handler is None:
            raise FrameError(frames.BAD_FRAME, f"unknown frame type {frame['type'][:frames.MAX_TYPE_CHARS]!r}")
        await handler(self, frame)

    async def _message(self, frame: dict[str, Any]) -> None:
        rt = self.rt
        chat_id = self._held(frame)
        text = frames.text_field(frame, "text", limit=frames.MAX_TEXT_CHARS, required=True)
        if not text.strip():
            raise FrameError(frames.BAD_FRAME, "\"text\" is empty")
        client_id = frames.text_field(frame, "client_id", limit=frames.MAX_ID_CHARS)
        try:
            seq, raw, new = await self.hub.log.append(chat_id, frames.FROM_AGENT, masked(text), rt.clock(), client_id,
                                                      self.account.name, holder=self.account.username)
        except ChatGone:
            raise FrameError(frames.NOT_ALLOWED, "this chat is closed") from None
        if not new:
            self.send({**msgpack.unpackb(raw), "chat_id": chat_id})  # a resend: acknowledge it again
            return
        self.hub.messages.add()
        feed = self.feeds.get(chat_id)
        if feed:
            feed.push(msgpack.unpackb(raw), raw)
        if chat_id not in self.replied:  # the reports' time to first reply (once per chat, whichever socket)
            self.replied.add(chat_id)
            await rollups.chat_first_reply(rt, chat_id, self.account.username, rt.clock())

    async def _typing(self, frame: dict[str, Any]) -> None:
        chat_id = self._held(frame)
        await lifecycle.publish(self.rt, keys.chat_channel(chat_id),
                                {"type": frames.TYPING, "from": frames.FROM_AGENT,
                                 "active": frames.bool_field(frame, "active", True)})

    async def _status(self, frame: dict[str, Any]) -> None:
        await self._set_status(frames.choice_field(frame, "status", frames.AGENT_CHOICES))

    async def _close(self, frame: dict[str, Any]) -> None:
        rt = self.rt
        chat_id = self._held(frame)
        resolution = frames.choice_field(frame, "resolution", frames.RESOLUTIONS)
        claimed: list[str] = []

        async def assign(next_chat: Claimed, later: list[lifecycle.Writes]) -> None:
            claimed.append(next_chat.chat_id)
            await self.hub.dispatch.assign_claimed(self.account, next_chat, later=later)

        self._closing.add(chat_id)  # the slot it frees is this handler's to fill, not the closed event's
        try:
            with self.hub.dispatch.filling():
                if resolution == frames.RESOLVED:
                    # The freed slot is filled in the same round trip, when the agent is online.
                    skills = self.skills() if self.status == frames.AGENT_ONLINE else None
                    if skills:
                        done = await lifecycle.close_and_claim(rt, chat_id, skills, assign)
                    else:
                        done = await lifecycle.close(rt, chat_id, frames.CLOSED_RESOLVED, holder=self.account.username)
                    ref = None
                else:
                    ref = await lifecycle.make_ticket(rt, chat_id, frames.TRIGGER_UNRESOLVED,
                                                      holder=self.account.username)
                    done = ref is not None
            if done:  # the slot is free now: this socket need not wait for the pub/sub echo
                reason = frames.CLOSED_RESOLVED if ref is None else frames.CLOSED_TICKET
                self._on_event(chat_id, frames.closed(reason, ref))
        finally:
            self._closing.discard(chat_id)
        if not claimed and done and self.wants_chats():
            self.hub.dispatch.kick()

    async def _transfer(self, frame: dict[str, Any]) -> None:
        chat_id = self._held(frame)
        to = frames.text_field(frame, "to", limit=frames.MAX_USERNAME_CHARS, required=True)
        if to == frames.TO_QUEUE:
            if not await lifecycle.transfer_to_queue(self.rt, chat_id, self.account.username):
                raise FrameError(frames.NOT_ALLOWED, "this chat cannot go back to the queue")
        elif to == self.account.username:
            raise FrameError(frames.NOT_ALLOWED, "you already hold this chat")
        else:
            ok, reason = await lifecycle.transfer_to_agent(self.rt, chat_id, to, holder=self.account.username)
            if not ok:
                raise FrameError(frames.NOT_ALLOWED, f"transfer refused: {reason}")

    # The agent-to-server frames (docs/protocol.md, section 4): one handler each.
    _handlers = {
        frames.MESSAGE: _message, frames.TYPING: _typing, frames.STATUS: _status, frames.CLOSE: _close,
        frames.TRANSFER: _transfer, frames.TICKET_VIEWING: lambda self, frame: self._ticket_viewing(frame),
    }

    async def _ticket_viewing(self, frame: dict[str, Any]) -> None:
        """`ticket_viewing` {ref, replying}: this agent has the ticket open (repeated while it
        stays open); a null or empty ref: no ticket open any more."""
        from transcripts.refs import normalize_ref

        raw = frames.text_field(frame, "ref", limit=frames.MAX_REF_CHARS, one_line=True)
        replying = frames.bool_field(frame, "replying", False)
        ref = normalize_ref(raw) if raw else None
        if raw and (ref is None or not await self.rt.redis.exists(keys.ticket(ref))):
            raise FrameError(frames.NOT_FOUND, "no such ticket")
        if self.viewing and self.viewing != ref:
            await ticket_presence.set_viewing(self.rt, self.viewing, self.account.username, self.account.name, False)
        self.viewing = ref
        if ref:
            await ticket_presence.set_viewing(self.rt, ref, self.account.username, self.account.name, True, replying)

    async def _set_status(self, status: str) -> None:
        rt = self.rt
        self.hub.dispatch.agents_changed()  # until written, this hub reads profiles from Redis again
        agents = await read_agents(rt.redis)
        profile = agents.get(self.account.username) or self.account.profile()
        profile["status"] = status
        await write_agent(rt.redis, self.account.username, profile)
        self.hub.dispatch.agents_changed()
        self.status = status
        if status == frames.AGENT_ONLINE:
            await rollups.agent_online(rt, self.account.username, rt.clock())
        else:
            await rollups.agent_offline(rt, self.account.username, rt.clock())
        self.send({"type": frames.STATUS, "status": status})  # the sender's confirmation does not depend on pub/sub
        await lifecycle.publish(rt, keys.agent_channel(self.account.username),
                                {"type": frames.STATUS, "status": status})
        await lifecycle.queue_changed(rt, work=status == frames.AGENT_ONLINE)

    async def detach(self) -> None:
        if self.viewing:
            viewing, self.viewing = self.viewing, None
            try:
                await ticket_presence.set_viewing(self.rt, viewing, self.account.username, self.account.name, False)
            except RedisError:
                pass  # the entry lapses by itself after [timing] ticket_viewing_ttl
        for chat_id in list(self.feeds):
            await self._drop_chat(chat_id)
        await self.hub.registry.remove_agent(self)
        try:
            await self.hub.presence.mark(keys.AGENTS_SEEN, self.account.username, self.rt.clock())
        except RedisError:
            pass


async def agent_endpoint(ws: WebSocket) -> None:
    rt: Runtime = ws.app.state.rt
    try:
        session = await read_session(rt, ws.cookies)
        account = await load_account(rt.redis, session.username) if session else None
    except RedisError:
        await ws.accept()
        await ws.send_text(frames.encode(frames.error(frames.UNAVAILABLE, "briefly unavailable: reconnect"), False))
        await ws.close(frames.CLOSE_UNAVAILABLE, "unavailable")
        return
    if account is None or not origin_allowed(ws, rt):
        await ws.accept()
        await ws.close(frames.CLOSE_POLICY, "login required" if account is None else "origin not allowed")
        return
    await AgentConnection(ws, rt, account, session.id).run()


routes = [WebSocketRoute("/ws/agent", agent_endpoint)]
