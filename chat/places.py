"""Waiting visitors' places in line and ETAs, kept current: coalesced (at most a few updates a
second), computed from sorted-set ranks, and looked up only behind where the line changed
(the "moved" news of chat/lifecycle.py queue_news).
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from chat import frames, keys, lifecycle
from chat.cancellation import raise_if_cancelled
from chat.dispatch import Dispatch, can_serve
from chat.fresh_read import FreshRead
from chat.queue import Hint
from chat.runtime import Runtime

if TYPE_CHECKING:
    from chat.visitor_socket import VisitorConnection

log = logging.getLogger("livechat.hub")

POSITION_INTERVAL = 0.3  # at most ~3 position frames a second per visitor
POSITION_SLICE = 32      # waiting sockets updated between two turns of the event loop
FILL_WAIT = 0.05         # seconds an update waits for freed slots being filled (Dispatch.filling)


class Places:
    def __init__(self, rt: Runtime, dispatch: Dispatch):
        self.rt = rt
        self.dispatch = dispatch
        self.waiting: dict[str, set["VisitorConnection"]] = {}
        self._dirty = asyncio.Event()
        # Where the line changed since the last places update (chat/lifecycle.py queue_news):
        # language -> the lowest score that joined, left or moved; _moved_all: anywhere.
        self._moved: dict[str, float] = {}
        self._moved_all = True
        self._eta_basis: tuple[Any, ...] | None = None  # what the ETAs sent last were computed from (aht, agents, capacity)
        # How many chats have their visitor present while waiting or offline (the desk's
        # max_waiting_chats): one ZCARD for the hellos that ask together.
        self.present = FreshRead(lambda: rt.redis.zcard(keys.VISITORS_SEEN))

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

    def line_moved(self, moved: Any) -> None:
        """News of the line (chat/lifecycle.py queue_news): note where it changed, so that the
        next update looks up only the chats at or behind that point of their language's line."""
        self._note_moved(moved)
        self._dirty.set()

    def line_lost(self) -> None:
        """News of the line may have been lost (the bus was away): look everyone up again."""
        self._moved_all = True
        self._dirty.set()

    def _note_moved(self, moved: Any) -> None:
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

    async def run(self) -> None:
        """Update places whenever news of the line came, at most every POSITION_INTERVAL."""
        while True:
            await self._dirty.wait()
            await self.dispatch.filled(FILL_WAIT)
            self._dirty.clear()
            try:
                await self.update()
            except RedisError:
                self._moved_all = True  # what this update should have looked up waits for the next
                raise_if_cancelled()
                log.warning("could not update queue positions: redis unavailable")
            except Exception:
                self._moved_all = True
                log.exception("queue position update failed")
            await asyncio.sleep(POSITION_INTERVAL)

    async def update(self) -> None:
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
        positions, aht = await self.rt.queue.positions(stale)
        await self.dispatch.filled(FILL_WAIT)
        agents = await self.dispatch.agent_profiles()
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
                await self.dispatch.filled(FILL_WAIT)
            conns = self.waiting.get(chat_id)
            if not conns:
                continue
            conn = next(iter(conns))
            position = looked_up[chat_id] if chat_id in looked_up else conn.position
            if position is None:
                continue
            key = (conn.lang, conn.topic_key)
            if key not in servable:
                servable[key] = (can_serve(agents, conn.lang, conn.topic_key)
                                 or not await self.dispatch.nobody_can_serve(conn.lang, conn.topic_key))
            if not servable[key]:
                await lifecycle.go_offline(self.rt, chat_id, frames.OFFLINE_NO_AGENTS, Hint(conn.lang, conn.topic_key))
                continue
            cap = capacity.get(conn.lang, 0)
            eta = int(math.ceil(position * aht / cap)) if aht and cap else None
            for c in list(conns):
                c.update_position(position, eta)
