"""This process's sockets and what they are watching: the parts, built and started together.

- ``registry`` (chat/registry.py): which sockets are here, and the pub/sub events fanned out to them;
- ``dispatch`` (chat/dispatch.py): waiting chats offered to local agents when capacity frees
  up (no polling), and the agents' profiles in memory;
- ``places`` (chat/places.py): waiting visitors' places in line and ETAs;
- ``presence`` and the heartbeat (chat/presence.py): marks that let other processes tell a
  vanished socket from a live one.

The hub itself hears the waiting line's news and the bus coming back, and tells each part.
"""

from __future__ import annotations

import asyncio
import logging

import msgpack
from redis.exceptions import RedisError

from chat import frames, keys
from chat.batching import PipelineBatcher, ScriptBatcher
from chat.bus import Bus
from chat.chatlog import ChatLog
from chat.dispatch import Dispatch
from chat.places import Places
from chat.presence import Heartbeat, Presence
from chat.registry import Registry
from chat.runtime import Runtime
from chat.stats import MessageCounter
from chat.store import is_cluster, load_scripts

log = logging.getLogger("livechat.hub")


class Hub:
    def __init__(self, rt: Runtime, bus: Bus):
        self.rt = rt
        self.bus = bus
        self.log = ChatLog(rt.redis, ScriptBatcher(rt.redis))
        # New chats' writes (chat/lifecycle.py open_chat) share round trips; not on a
        # cluster, whose pipelines split by node anyway.
        self.new_chat_writes = None if is_cluster(rt.redis) else PipelineBatcher(rt.redis)
        self.messages = MessageCounter()
        self.presence = Presence(rt.redis)
        self.registry = Registry(bus)
        self.dispatch = Dispatch(rt, self.registry)
        self.places = Places(rt, self.dispatch)
        self.heartbeat = Heartbeat(rt, self.registry, self.dispatch, self.messages)
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        try:
            await load_scripts(self.rt.redis)
        except RedisError:  # Redis away: each script loads on its first use instead
            log.warning("could not load the Lua scripts into Redis; they load on first use")
        bus = self.bus
        await bus.subscribe(keys.QUEUE_CHANNEL, self._on_queue_event)
        await bus.subscribe(keys.TICKETS_CHANNEL, self.registry.on_ticket_event)
        bus.on_reconnect(self._resync_all)
        self._tasks = [
            asyncio.create_task(self.places.run(), name="positions"),
            asyncio.create_task(self.heartbeat.run(), name="heartbeat"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_queue_event(self, channel: str, data: bytes) -> None:
        event = msgpack.unpackb(data)
        if event.get("agents"):
            self.dispatch.agents_changed()
        if event.get("work"):
            self.dispatch.kick()
        self.places.line_moved(event.get("moved"))

    def _resync_all(self) -> None:
        self.dispatch.agents_changed()  # announcements may have been lost with the connection
        self.registry.resync()
        self.dispatch.kick()
        self.places.line_lost()  # news of the line was lost too
        self.registry.to_agents({"type": frames.TICKET_CHANGED, "ref": None})  # ticket news was lost: look again
