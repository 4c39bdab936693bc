"""Which sockets are on this process, and the pub/sub events fanned out to them.

One subscription per chat watched here and per agent connected here, however many sockets
follow them; a ticket's news reaches every agent dashboard here through one subscription
(the hub's). Also counts the visitor sockets each client address holds here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Protocol

import msgpack
from redis.exceptions import RedisError

from chat import frames, keys
from chat.bus import Bus

if TYPE_CHECKING:
    from chat.agent_socket import AgentConnection
    from chat.visitor_socket import VisitorConnection

log = logging.getLogger("livechat.hub")

_AGENT_PREFIX, _AGENT_SUFFIX = keys.agent_channel("\0").split("\0")


class ChatListener(Protocol):
    def push(self, event: dict[str, Any], raw: bytes) -> None: ...
    def resync(self) -> None: ...


class Registry:
    def __init__(self, bus: Bus):
        self.bus = bus
        self.chat_listeners: dict[str, set[ChatListener]] = {}
        self.agents: dict[str, set["AgentConnection"]] = {}
        self.visitors: dict[str, set["VisitorConnection"]] = {}
        self.addresses: dict[str, int] = {}  # hashed client address -> open visitor sockets here
        self.supervisors = 0
        self._resyncing: asyncio.Task | None = None

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

    def hungry_agents(self) -> list["AgentConnection"]:
        """One socket of each agent here who is online with room for another chat."""
        return [next(iter(c)) for c in self.agents.values() if c and next(iter(c)).wants_chats()]

    # --- chat events -----------------------------------------------------------------

    async def watch(self, chat_id: str, listener: ChatListener) -> None:
        await self.watch_soon(chat_id, listener)

    def watch_soon(self, chat_id: str, listener: ChatListener) -> Awaitable[None]:
        """:meth:`watch` started now; the subscription is confirmed when the result is awaited."""
        listeners = self.chat_listeners.setdefault(chat_id, set())
        listeners.add(listener)
        return self.bus.subscribe_soon(keys.chat_channel(chat_id), self._on_chat_event)

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

    def resync(self) -> None:
        """The bus came back: every chat listener catches up from the log, and every socket
        compares its view with the records in Redis."""
        for listeners in self.chat_listeners.values():
            for listener in list(listeners):
                listener.resync()
        if self._resyncing is None:
            self._resyncing = asyncio.create_task(self._resync_states(), name="resync-states")

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

    # --- agents ------------------------------------------------------------------------

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

    def _on_agent_event(self, channel: str, data: bytes) -> None:
        username = channel[len(_AGENT_PREFIX) : len(channel) - len(_AGENT_SUFFIX)]
        event = msgpack.unpackb(data)
        for conn in list(self.agents.get(username, ())):
            conn.on_agent_event(event)

    def on_ticket_event(self, channel: str, data: bytes) -> None:
        """One subscription per hub: a ticket was made or changed (transcripts/desk.py), or
        who has one open changed (chat/ticket_presence.py); every agent dashboard here hears it."""
        event = msgpack.unpackb(data)
        kind, ref = event.get("type"), event.get("ref")
        if not isinstance(ref, str):
            return
        if kind == frames.EVENT_TICKET:
            self.to_agents({"type": frames.TICKET_CHANGED, "ref": ref})
        elif kind == frames.EVENT_VIEWERS:
            self.to_agents({"type": frames.TICKET_VIEWERS, "ref": ref, "viewers": event.get("viewers") or []})

    def to_agents(self, frame: dict[str, Any]) -> None:
        for conns in list(self.agents.values()):
            for conn in list(conns):
                conn.send(frame)

    # --- visitors ----------------------------------------------------------------------

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
