"""One socket's view of one chat: delivers each message exactly once, in seq order.

Messages reach a socket by two roads (pub/sub, and the sender's own acknowledgement) and
pub/sub may drop some across a reconnect. The feed remembers the last seq it passed on; a
duplicate is dropped, and a jump is filled from the log in Redis before anything newer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from redis.asyncio import Redis

from chat import frames, keys

log = logging.getLogger("livechat.feed")

FILL_PAGE = 100  # messages per log read when catching up

MessageSink = Callable[[dict[str, Any] | None, bytes], None]
EventSink = Callable[[dict[str, Any]], None]
RoomWait = Callable[[], Awaitable[None]]


class ChatFeed:
    def __init__(self, redis: Redis, chat_id: str, last_seq: int, on_message: MessageSink, on_event: EventSink,
                 room: RoomWait | None = None):
        """room, if given, is awaited after each replayed message: the socket's send queue
        (chat.connection.Connection.room) makes a long replay wait for a client that reads
        slowly instead of overflowing the queue meant to catch clients that stopped reading."""
        self.redis = redis
        self.room = room
        self.chat_id = chat_id
        self.last_seq = last_seq
        self.on_message = on_message
        self.on_event = on_event
        self.paused = True
        self._pending: list[tuple[dict[str, Any], bytes]] = []
        self._filling: asyncio.Task | None = None
        self._fill_to = 0
        self._resync_wanted = False

    def push(self, event: dict[str, Any], raw: bytes) -> None:
        """An event from pub/sub (or the sender's own acknowledgement)."""
        if self.paused or self._filling:
            if event.get("type") == frames.MESSAGE:
                self._fill_to = max(self._fill_to, int(event["seq"]))
            self._pending.append((event, raw))
            return
        if event.get("type") != frames.MESSAGE:
            self.on_event(event)
            return
        seq = int(event["seq"])
        if seq <= self.last_seq:
            return
        if seq == self.last_seq + 1:
            self.last_seq = seq
            self.on_message(event, raw)
            return
        self._fill_to = seq
        self._pending.append((event, raw))
        self._start_fill()

    def resume(self, catch_up: bool = True) -> None:
        """Start delivering; with catch_up (or if pub/sub was lost while paused), first replay
        everything after last_seq from the log."""
        self.paused = False
        if catch_up or self._resync_wanted:
            self._resync_wanted = False
            self._fill_to = max(self._fill_to, self.last_seq + 1)
            self._start_fill()
        else:
            self._flush_pending()

    def resync(self) -> None:
        """After pub/sub was lost: read whatever the log has beyond last_seq (a paused feed
        does when it resumes)."""
        if self.paused:
            self._resync_wanted = True
        elif not self._filling:
            self._fill_to = self.last_seq + 1
            self._start_fill()

    def close(self) -> None:
        if self._filling:
            self._filling.cancel()
        self._pending.clear()

    def _start_fill(self) -> None:
        if not self._filling:
            self._filling = asyncio.create_task(self._fill())

    async def _fill(self) -> None:
        """Replay from the log a page at a time, at the pace the socket takes it (room)."""
        try:
            while True:
                rows = await self.redis.lrange(keys.chat_log(self.chat_id), self.last_seq, self.last_seq + FILL_PAGE - 1)
                for raw in rows:
                    self.last_seq += 1
                    self.on_message(None, raw)
                    if self.room is not None:
                        await self.room()
                if not rows or (len(rows) < FILL_PAGE and self.last_seq >= self._fill_to):
                    break
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("could not read the log of %s; will retry on the next event", self.chat_id, exc_info=True)
        finally:
            self._filling = None
        self._flush_pending()

    def _flush_pending(self) -> None:
        pending, self._pending = self._pending, []
        for event, raw in pending:
            self.push(event, raw)
