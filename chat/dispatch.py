"""Offering waiting chats to this process's agents with room, when capacity frees up (no
polling), and the agents' routing profiles kept in memory to answer "can anyone serve this?".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Iterator

from redis.exceptions import RedisError

from chat import frames, lifecycle
from chat.fresh_read import FreshRead
from chat.queue import Claimed, decode_agents, read_agents, topic_key
from chat.registry import Registry
from chat.runtime import Runtime

if TYPE_CHECKING:
    from agents.accounts import Account
    from chat.agent_socket import AgentConnection

log = logging.getLogger("livechat.hub")


class Dispatch:
    def __init__(self, rt: Runtime, registry: Registry):
        self.rt = rt
        self.registry = registry
        self._dispatching: asyncio.Task | None = None
        self._dispatch_again = False
        self._profiles: dict[str, dict[str, Any]] | None = None  # agents' routing profiles (agent_profiles)
        self._profiles_changes = 0
        self._agents_now = FreshRead(lambda: read_agents(rt.redis))  # a burst of hellos shares one read
        self._filling = 0
        self._filled = asyncio.Event()
        self._filled.set()

    # --- filling freed slots first -------------------------------------------------------

    @contextlib.contextmanager
    def filling(self) -> Iterator[None]:
        """A freed slot is being filled (a close, its claim, the `assigned`): places in line
        wait for it (``filled``), so that the agent's next chat does not queue behind a
        hundred place frames on this process's one core."""
        self._filling += 1
        self._filled.clear()
        try:
            yield
        finally:
            self._filling -= 1
            if not self._filling:
                self._filled.set()

    async def filled(self, at_most: float) -> None:
        """Return once no freed slot is being filled, or after ``at_most`` seconds (a desk
        that fills slots without pause still gets its places in line)."""
        if not self._filled.is_set():
            try:
                await asyncio.wait_for(self._filled.wait(), at_most)
            except asyncio.TimeoutError:
                pass

    # --- offering chats ----------------------------------------------------------------

    def kick(self) -> None:
        """Offer waiting chats to local agents with room; runs at most once at a time."""
        self._dispatch_again = True
        if self._dispatching is None:
            self._dispatching = asyncio.create_task(self._dispatch())

    async def _dispatch(self) -> None:
        try:
            while self._dispatch_again:
                self._dispatch_again = False
                hungry = self.registry.hungry_agents()
                hungry.sort(key=lambda conn: len(conn.feeds))
                for conn in hungry:
                    with self.filling():
                        await self.fill_agent(conn)
        except RedisError:
            log.warning("dispatch failed: redis unavailable")
        finally:
            self._dispatching = None

    async def fill_agent(self, conn: "AgentConnection") -> None:
        """Claim chats for one agent until it is full or nothing it can serve waits."""
        account, skills = conn.account, conn.skills()
        while True:
            claim = await self.rt.queue.claim_next(skills, self.rt.clock())
            if claim is None:
                return
            await self.assign_claimed(account, claim)

    async def assign_claimed(self, account: "Account", claim: Claimed,
                             later: list[lifecycle.Writes] | None = None) -> None:
        """Record a successful claim. The claim is the decision: this process's sockets of
        the agent open the chat while its record is updated and the news published; they
        show it to the agent once the record names the agent (its messages are stored only
        then, chat/chatlog.py). Returns once they have. The claim's figures (live stats,
        reports) are written after that, or left in ``later`` for the caller's next writes
        (a closing agent's next chat goes out before the rest of the close is written)."""
        chat_id, figures = claim.chat_id, later if later is not None else []
        recorded = asyncio.ensure_future(lifecycle.assigned(self.rt, chat_id, account.username, account.name,
                                                            figures, claim))
        opening = [local.open_assigned(chat_id, recorded) for local in list(self.registry.agents.get(account.username, ()))]
        await recorded
        if opening:
            await asyncio.wait(opening)
        if later is None and figures:
            await lifecycle.write(figures, self.rt)

    # --- agents' profiles --------------------------------------------------------------

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

    @property
    def profiles_changes(self) -> int:
        """How many changes were announced so far: taken before a read, so that profiles read
        while a change was announced are not kept (profiles_read)."""
        return self._profiles_changes

    def profiles_read(self, raw: dict[bytes, bytes], changes: int) -> None:
        """Profiles read afresh (the heartbeat's HGETALL of keys.AGENTS, once a beat): kept
        unless a change was announced since ``changes`` was taken."""
        if changes == self._profiles_changes:
            self._profiles = decode_agents(raw)

    async def someone_can_serve(self, lang: str, topic: str | None, emergency: bool) -> bool:
        key = topic_key(topic, emergency)
        return can_serve(await self.agent_profiles(), lang, key) or not await self.nobody_can_serve(lang, key)

    async def nobody_can_serve(self, lang: str, key: str) -> bool:
        """Checked in Redis, not in the profiles kept here: a "no" sends a chat offline, and the
        news of an agent who came online on another hub a moment ago may still be on its way
        over pub/sub. A "yes" from memory needs no such check: the claim itself re-checks the
        agent's status and capacity atomically. The read started after this question
        (chat/fresh_read.py), and hellos asking together share it."""
        changes = self._profiles_changes
        fresh = await self._agents_now()
        if changes == self._profiles_changes:
            self._profiles = fresh
        return not can_serve(fresh, lang, key)


def can_serve(agents: dict[str, dict[str, Any]], lang: str, topic: str) -> bool:
    """Whether an online agent speaks lang and takes the topic (a topic key, chat.queue.topic_key)."""
    for profile in agents.values():
        if profile.get("status") != frames.AGENT_ONLINE or lang not in profile.get("langs", ()):
            continue
        topics = profile.get("topics") or ()
        if not topics or topic == "_" or topic in topics:
            return True
    return False
