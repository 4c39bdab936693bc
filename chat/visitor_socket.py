"""/ws/visitor: a visitor's chat from hello to rating (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re

import msgpack
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from chat import chats, frames, keys, lifecycle, rollups, timers
from chat.chatlog import ChatFull, ChatGone
from chat.connection import Closed, Connection, new_chat_allowed
from chat.windows import is_loopback
from chat.feed import ChatFeed
from chat.config import Limits
from chat.frames import FrameError
from chat.identity import IdentityError, verify
from chat.plans import is_open, virtual_arrival
from chat.queue import Hint, topic_key
from chat.runtime import Runtime

log = logging.getLogger("livechat.visitor")

LANG = re.compile(r"^[a-z0-9]{1,12}(-[a-z0-9]{1,8})?$")
TOPIC = re.compile(r"^[a-z0-9_-]{1,32}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}$")
EMERGENCY = "emergency"


def masked(text: str) -> str:
    try:
        from transcripts.masking import mask
    except ImportError:  # the transcripts package is optional for the hub core
        return text
    return mask(text)


def client_fingerprint(rt: Runtime, ws: WebSocket) -> str:
    """A salted hash of the client address: rate limits and abuse guards never keep a raw IP."""
    host = ws.client.host if ws.client else ""
    return hashlib.sha256(rt.secret + host.encode()).hexdigest()[:32]


def _score(raw: str | None) -> float:
    try:
        return float(raw) if raw is not None else math.inf
    except ValueError:
        return math.inf


class VisitorConnection(Connection):
    kind = "visitor"

    def frame_limit(self, limits: Limits) -> tuple[float, float]:
        return limits.visitor_frames_per_second, limits.visitor_frame_burst

    def __init__(self, ws: WebSocket, rt: Runtime):
        super().__init__(ws, rt)
        self.chat_id = ""
        self.resume_token = ""
        self.lang = "en"
        self.topic_key = "_"
        self.status = frames.CHAT_QUEUED
        self.feed: ChatFeed | None = None
        self.position: int | None = None
        self.eta: int | None = None
        self.score = math.inf  # the chat's place in line by virtual arrival (unknown: behind everyone)
        self.verified = False
        self.emergency = False

    def needs_presence(self) -> bool:
        return self.status in frames.WAITING_STATUSES

    # --- outbound ------------------------------------------------------------------

    def update_position(self, position: int, eta: int | None) -> None:
        if self.status == frames.CHAT_QUEUED and (position, eta) != (self.position, self.eta):
            self.position, self.eta = position, eta
            self.send({"type": frames.QUEUED, "position": position, "eta_s": eta})

    def _on_message(self, frame: dict[str, Any] | None, raw: bytes) -> None:
        self.send_packed(raw, frame)

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == frames.TYPING:
            if event.get("from") == frames.FROM_AGENT:
                self.send({"type": frames.TYPING, "active": bool(event.get("active"))})
        elif kind == frames.ASSIGNED:
            self._set_status(frames.CHAT_ACTIVE)
            self.send({"type": frames.ASSIGNED, "agent": {"name": event["agent"]["name"]}})
        elif kind == frames.EVENT_REQUEUED:
            self._set_status(frames.CHAT_QUEUED)
            self.position = None
        elif kind == frames.OFFLINE:
            self._set_status(frames.CHAT_OFFLINE)
            self.send({"type": frames.OFFLINE, "reason": event["reason"]})
        elif kind == frames.CLOSED:
            self._set_status(frames.CHAT_CLOSED)
            self.send(frames.closed(event["reason"], event.get("ref")))
        elif kind == frames.TICKET:
            self.send({"type": frames.TICKET, "ref": event["ref"]})
            if event.get("confirmation") == "limited":
                self.error(frames.LIMIT_REACHED, "the ticket is made, but this address got all the confirmation "
                                                 "mails it may get today: none was sent for this one")
        elif kind == frames.WAIT_OR_TICKET:
            self.send(event)

    async def catch_up_state(self) -> None:
        """Catch up with what happened to the chat while pub/sub was away."""
        if self.status == frames.CHAT_CLOSED:
            return
        chat = await chats.load_chat(self.rt.redis, self.chat_id)
        status = (chat or {}).get("status")
        if not chat or status == self.status:
            return
        if status == frames.CHAT_ACTIVE:
            self._on_event({"type": frames.ASSIGNED, "agent": {"name": chat.get("agent_name", "")}})
        elif status == frames.CHAT_QUEUED:
            self._on_event({"type": frames.EVENT_REQUEUED})
        elif status == frames.CHAT_OFFLINE:
            self._on_event({"type": frames.OFFLINE, "reason": chat.get("offline_reason", "")})
        elif status == frames.CHAT_CLOSED:
            self._on_event(frames.closed(chat.get("closed_reason", ""), chat.get("ticket")))

    def _set_status(self, status: str) -> None:
        self.status = status
        self.hub.places.set_waiting(self, status == frames.CHAT_QUEUED)

    def _leave_hub(self) -> None:
        self.hub.registry.remove_visitor(self)
        self.hub.places.set_waiting(self, False)

    # --- hello ---------------------------------------------------------------------

    async def run(self) -> None:
        await self.accept()
        host = self.ws.client.host if self.ws.client else ""
        address = None if is_loopback(host) else client_fingerprint(self.rt, self.ws)
        if address is not None and not self.hub.registry.claim_address(address, self.rt.config.limits.sockets_per_address):
            self.error(frames.LIMIT_REACHED, "too many open chat windows from your address: close one and try again")
            await self.close(frames.CLOSE_POLICY, "too many sockets from your address")
            return
        try:
            await self._run()
        finally:
            if address is not None:
                self.hub.registry.release_address(address)

    async def _run(self) -> None:
        try:
            async with asyncio.timeout(self.rt.config.timing.hello_timeout):  # no task, unlike wait_for
                hello = await self.receive()
        except (asyncio.TimeoutError, FrameError, Closed):
            hello = None
        if not hello or hello.get("type") != frames.HELLO:
            self.error(frames.BAD_FRAME, "the first frame must be hello")
            await self.close(frames.CLOSE_POLICY, "hello expected")
            return
        await self.serve(self.start(hello))

    async def start(self, hello: dict[str, Any]) -> None:
        rt = self.rt
        last_seq = frames.int_field(hello, "last_seq", 0)
        resume = hello.get("resume")
        chat = None
        if resume is not None:
            chat_id = await chats.chat_for_resume(rt.redis, resume) if isinstance(resume, str) else None
            chat = await chats.load_chat(rt.redis, chat_id) if chat_id else None
            if chat is None:
                self.error(frames.BAD_RESUME, "unknown or expired resume token: a new chat was started")
                last_seq = 0
            else:
                self.chat_id, self.resume_token = chat_id, resume
        fields = None
        if chat is None:
            fields = await self._new_chat(hello)  # checked, not stored yet
            chat = {k: ("1" if v is True else "0" if v is False else str(v)) for k, v in fields.items()}
            self.chat_id = chats.new_chat_id()
            last_seq = 0
        self.lang = chat["lang"]
        self.verified = chat.get("verified") == "1"
        self.emergency = chat.get("emergency") == "1"
        self.topic_key = topic_key(chat.get("topic"), self.emergency)
        self.score = _score(chat.get("score"))
        self.status = chat.get("status", frames.CHAT_QUEUED)  # a new chat's is decided below
        # Checked and counted with no await in between, so concurrent resumes cannot all pass.
        per_chat = rt.config.limits.sockets_per_chat
        if per_chat and len(self.hub.registry.visitors.get(self.chat_id, ())) >= per_chat:
            raise FrameError(frames.LIMIT_REACHED, "this chat is open in too many windows: close one and reconnect")
        self.feed = ChatFeed(rt.redis, self.chat_id, min(last_seq, 2**31), self._on_message, self._on_event, self.room)
        self.hub.registry.add_visitor(self)
        try:
            if fields is not None:
                # Subscribed before the chat is stored anywhere (so before any agent can take
                # it), while its status is decided; then everything is written in one go.
                watching = self.hub.registry.watch_soon(self.chat_id, self.feed)
                try:
                    status = await self._new_status(fields)
                finally:
                    await watching
                fields.update(status)
                chat.update(status)
                self.status = chat["status"]
                resume_ttl = int(rt.config.retention_days * 86400) or 86400
                self.resume_token = await lifecycle.open_chat(rt, self.chat_id, fields, resume_ttl,
                                                              self.hub.new_chat_writes)
            else:
                await self.hub.registry.watch(self.chat_id, self.feed)
                if chat["status"] in frames.WAITING_STATUSES:
                    await self.hub.presence.mark(keys.VISITORS_SEEN, self.chat_id, rt.clock())
        except Exception:  # refused or Redis unavailable: this socket leaves no trace in the hub
            self._leave_hub()
            self.feed.close()
            await self.hub.registry.unwatch(self.chat_id, self.feed)
            raise
        welcome = {
            "type": frames.WELCOME, "chat_id": self.chat_id, "resume": self.resume_token, "status": self.status,
            "plan": chat.get("plan"), "verified": self.verified, "emergency": self.emergency,
        }
        if self.status == frames.CHAT_OFFLINE:
            self.send_all(welcome, {"type": frames.OFFLINE, "reason": chat.get("offline_reason") or frames.OFFLINE_NO_AGENTS})
        elif self.status == frames.CHAT_ACTIVE:
            self.send_all(welcome, {"type": frames.ASSIGNED, "agent": {"name": chat.get("agent_name", "")}})
        else:
            self.send(welcome)
            if self.status == frames.CHAT_QUEUED:
                self.hub.places.set_waiting(self, True)
        # A new chat's log is empty, and its channel was subscribed before anyone could write.
        self.feed.resume(catch_up=fields is None)
        if self.status == frames.CHAT_CLOSED:
            await self.feed_drained()
            self.send(frames.closed(chat.get("closed_reason") or frames.CLOSED_RESOLVED, chat.get("ticket")))
        await self.welcomed()

    async def feed_drained(self) -> None:
        task = self.feed._filling if self.feed else None
        if task:
            try:
                await asyncio.wait_for(asyncio.shield(task), 5)
            except Exception:
                pass

    async def _new_chat(self, hello: dict[str, Any]) -> dict[str, Any]:
        """A new chat's fields from the hello, checked; its status is decided by _new_status
        and nothing is stored yet (lifecycle.open_chat)."""
        rt = self.rt
        if not await new_chat_allowed(rt, self.ws.client.host if self.ws.client else "", client_fingerprint(rt, self.ws)):
            raise FrameError(frames.RATE_LIMITED, "too many new chats from your address: try again in a minute")
        now = rt.clock()
        plan = rt.config.lowest_plan
        identity = None
        token = hello.get("identity")
        if token is not None:
            try:
                identity = verify(rt.settings.site_secret, token, rt.config.plans, now,
                                  rt.config.limits.identity_max_ttl)
                plan = rt.config.plans[identity.plan]
            except IdentityError as exc:
                self.error(frames.BAD_IDENTITY, f"identity not accepted ({exc}): continuing as an unverified visitor")
        lang = (frames.text_field(hello, "lang", limit=frames.MAX_LANG_CHARS) or "en").lower()
        if not LANG.match(lang):
            raise FrameError(frames.BAD_FRAME, "\"lang\" must be a language code such as en or fr-be")
        topic = (frames.text_field(hello, "topic", limit=frames.MAX_TOPIC_CHARS) or "").lower()
        if topic and not TOPIC.match(topic):
            raise FrameError(frames.BAD_FRAME, "\"topic\" must be a short word such as billing")
        email = frames.text_field(hello, "email", limit=frames.MAX_EMAIL_CHARS, one_line=True) or ""
        if email and not EMAIL.match(email):
            email = ""
        emergency = topic == EMERGENCY and await self._emergency_allowed(identity is not None)
        return {
            "site": frames.text_field(hello, "site", limit=frames.MAX_SITE_CHARS) or "default",
            "plan": plan.name,
            "verified": identity is not None,
            "sub": identity.sub if identity else "",
            # A verified visitor's name and email are what the site vouches for, never what the
            # hello claims (agents act on them); an unverified visitor's are its own, unverified.
            "name": identity.name if identity else frames.text_field(hello, "name", limit=frames.MAX_NAME_CHARS, one_line=True) or "",
            "email": identity.email if identity else email,
            "lang": lang,
            "topic": topic,
            "page": frames.text_field(hello, "page", limit=frames.MAX_PAGE_CHARS) or "",
            "emergency": emergency,
            "created_at": repr(now),
            "arrived_at": repr(now),
            "score": repr(virtual_arrival(now, plan, rt.config.emergency_head_start if emergency else None)),
            "visitor_msgs": 0,
        }

    async def _new_status(self, fields: dict[str, Any]) -> dict[str, str]:
        """Queued, or offline and why: closed hours, the desk full, nobody who can serve it."""
        rt = self.rt
        plan = rt.config.plan(fields["plan"])
        if not is_open(plan, rt.config.schedules, rt.clock()):
            return {"status": frames.CHAT_OFFLINE, "offline_reason": frames.OFFLINE_CLOSED_HOURS}
        if await self._desk_full():
            return {"status": frames.CHAT_OFFLINE, "offline_reason": frames.OFFLINE_BUSY}
        if not await self.hub.dispatch.someone_can_serve(fields["lang"], fields["topic"], fields["emergency"]):
            return {"status": frames.CHAT_OFFLINE, "offline_reason": frames.OFFLINE_NO_AGENTS}
        return {"status": frames.CHAT_QUEUED}

    async def _desk_full(self) -> bool:
        """[limits] max_waiting_chats: past it a new chat is not queued but offline (busy), so
        that a flood of visitors meets a clear answer instead of a full Redis. Counts the
        chats whose visitor is present while waiting or offline (one ZCARD, shared by the
        hellos that ask together: chat/fresh_read.py)."""
        limit = self.rt.config.limits.max_waiting_chats
        return bool(limit) and await self.hub.places.present() >= limit

    async def _emergency_allowed(self, verified: bool) -> bool:
        """Verified customers may always flag an emergency; an anonymous visitor once per
        guard period per client address (and per resume token when escalating later)."""
        if verified:
            return True
        ttl = int(self.rt.config.emergency_guard_ttl) or 1
        who = [client_fingerprint(self.rt, self.ws)]
        if self.resume_token:
            who.append(chats.token_hash(self.resume_token))
        async with self.rt.redis.pipeline(transaction=False) as pipe:
            for w in who:
                pipe.set(keys.emergency_guard(w), "1", nx=True, ex=ttl)
            results = await pipe.execute()
        return all(results)

    # --- inbound frames ------------------------------------------------------------

    async def handle(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == frames.MESSAGE:
            await self._message(frame)
        elif kind == frames.TYPING:
            if self.status != frames.CHAT_CLOSED:
                await lifecycle.publish(self.rt, keys.chat_channel(self.chat_id), {
                    "type": frames.TYPING, "from": frames.FROM_VISITOR, "active": frames.bool_field(frame, "active", True)})
        elif kind == frames.LEAVE:
            await lifecycle.visitor_left(self.rt, self.chat_id)
        elif kind == frames.RATE:
            await self._rate(frame)
        elif kind == frames.CONTACT:
            await self._contact(frame)
        elif kind == frames.WAIT_OR_TICKET:
            choice = frames.choice_field(frame, "choice", frames.WAIT_CHOICES)
            if not await lifecycle.answer_wait_offer(self.rt, self.chat_id, choice):
                raise FrameError(frames.NOT_ALLOWED, "no wait_or_ticket question is waiting for an answer")
        elif kind == frames.READ:
            seq = frames.int_field(frame, "seq", 0)
            await lifecycle.publish(self.rt, keys.chat_channel(self.chat_id),
                                    {"type": frames.READ, "from": frames.FROM_VISITOR, "seq": seq})
        elif kind == frames.HELLO:
            raise FrameError(frames.BAD_FRAME, "hello was already received")
        else:
            raise FrameError(frames.BAD_FRAME, f"unknown frame type {kind[:frames.MAX_TYPE_CHARS]!r}")

    async def _message(self, frame: dict[str, Any]) -> None:
        text = frames.text_field(frame, "text", limit=frames.MAX_TEXT_CHARS, required=True)
        if not text.strip():
            raise FrameError(frames.BAD_FRAME, "\"text\" is empty")
        client_id = frames.text_field(frame, "client_id", limit=frames.MAX_ID_CHARS)
        if self.status == frames.CHAT_CLOSED:
            raise FrameError(frames.NOT_ALLOWED, "this chat is closed")
        rt = self.rt
        limits = rt.config.limits
        try:
            seq, raw, new = await self.hub.log.append(
                self.chat_id, frames.FROM_VISITOR, masked(text), rt.clock(), client_id,
                max_messages=limits.visitor_messages_per_chat, max_bytes=limits.visitor_bytes_per_chat)
        except ChatGone:
            raise FrameError(frames.NOT_ALLOWED, "this chat is closed") from None
        except ChatFull:
            raise FrameError(frames.LIMIT_REACHED, "this chat holds as much as a visitor may write: nothing was "
                                                   "stored; the agent can still answer") from None
        if not new:
            self.send_packed(raw, None)  # a resend: acknowledge it again, store nothing
            return
        self.feed.push(msgpack.unpackb(raw), raw)
        self.hub.messages.add()
        if self.status == frames.CHAT_OFFLINE:
            await timers.schedule(rt.redis, timers.OFFLINE_IDLE, self.chat_id, rt.clock() + rt.config.timing.offline_idle)
        # The chat's first message (seq 1 from the log: the feed's own count may still be
        # catching up from the log when the visitor writes right after hello).
        if seq == 1 and self.status == frames.CHAT_QUEUED and not self.emergency and text.lstrip().lower().startswith(EMERGENCY):
            await self._escalate()

    async def _escalate(self) -> None:
        """A first message starting with "Emergency": jump the line, within the abuse guard."""
        if not await self._emergency_allowed(self.verified):
            return
        chat = await chats.load_chat(self.rt.redis, self.chat_id)
        if not chat:
            return
        plan = self.rt.config.plan(chat.get("plan"))
        score = virtual_arrival(float(chat["arrived_at"]), plan, self.rt.config.emergency_head_start)
        # Flag first (an agent claiming the chat now sees it), then move it in one atomic step
        # that leaves a chat alone if an agent claimed it meanwhile.
        await chats.update_chat(self.rt.redis, self.chat_id, emergency=True, score=repr(score))
        if not await self.rt.queue.rescore(self.chat_id, score=score, topic=topic_key(chat.get("topic"), True),
                                           emergency=True, hint=Hint(self.lang, self.topic_key)):
            return
        self.emergency = True
        self.topic_key = topic_key(chat.get("topic"), True)
        self.score = score
        await lifecycle.queue_changed(self.rt, work=True, moved=[(self.lang, score)])

    async def _rate(self, frame: dict[str, Any]) -> None:
        if self.status != frames.CHAT_CLOSED:
            raise FrameError(frames.NOT_ALLOWED, "a chat can be rated once it is closed")
        score = frames.int_field(frame, "score", 0, 1, 5)
        if score == 0:
            raise FrameError(frames.BAD_FRAME, "\"score\" must be from 1 to 5")
        comment = frames.text_field(frame, "comment", limit=frames.MAX_COMMENT_CHARS) or ""
        if not await chats.rate_chat(self.rt.redis, self.chat_id, score, masked(comment)):
            raise FrameError(frames.NOT_ALLOWED, "this chat was already rated")
        from chat.stats import record_rating

        now = self.rt.clock()
        await record_rating(self.rt.redis, score, now)
        await rollups.chat_rated(self.rt, self.chat_id, await chats.load_chat(self.rt.redis, self.chat_id) or {},
                                 score, now)
        self.send({"type": frames.RATED, "score": score})

    async def _contact(self, frame: dict[str, Any]) -> None:
        email = frames.text_field(frame, "email", limit=frames.MAX_EMAIL_CHARS, one_line=True) or ""
        name = frames.text_field(frame, "name", limit=frames.MAX_NAME_CHARS, one_line=True)
        if email and not EMAIL.match(email):
            raise FrameError(frames.BAD_FRAME, "\"email\" is not an email address")
        if self.verified:
            raise FrameError(frames.NOT_ALLOWED, "a verified visitor's contact comes from the site")
        fields = {"email": email} if email else {}
        if name:
            fields["name"] = name
        if fields:
            await chats.update_chat(self.rt.redis, self.chat_id, **fields)
        self.send({"type": frames.CONTACT, "email": email, **({"name": name} if name else {})})

    async def detach(self) -> None:
        self._leave_hub()
        if self.feed:
            self.feed.close()
            await self.hub.registry.unwatch(self.chat_id, self.feed)
        if self.chat_id and self.needs_presence():
            # Not waited for: the socket is gone, and the mark goes with others (chat/presence.py).
            self.hub.presence.mark(keys.VISITORS_SEEN, self.chat_id, self.rt.clock())


async def visitor_endpoint(ws: WebSocket) -> None:
    conn = VisitorConnection(ws, ws.app.state.rt)
    await conn.run()


routes = [WebSocketRoute("/ws/visitor", visitor_endpoint)]
