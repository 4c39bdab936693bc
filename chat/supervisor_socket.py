"""`/ws/supervisor`: the live queue snapshot pushed to supervisors.

One feed per hub process does the work, however many supervisors watch: it recomputes the
snapshot (chat/snapshot.py) when keys.QUEUE_CHANNEL says the queue or an agent's load
changed, at most a few times a second, and every few seconds anyway so that ages stay
current. Each socket holds only the latest snapshot, so a slow browser never builds a
backlog.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgpack
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from agents.sessions import read_session
from chat import frames, keys
from chat.bus import Bus
from chat.connection import accept_socket, origin_allowed
from chat.runtime import Runtime
from chat.snapshot import comparable, queue_snapshot

log = logging.getLogger(__name__)

MIN_INTERVAL = 0.3  # seconds between two computed snapshots (coalescing: ~3 per second at most)
REFRESH = 5.0  # seconds between pushes when nothing changes, so ages keep moving
SESSION_CHECK = 5.0  # how often a watching socket re-checks its session (logout, expiry)
INBOUND_PER_MINUTE = 120  # a supervisor page sends next to nothing; more is a flood


class SupervisorFeed:
    """The per-process snapshot pump shared by every supervisor socket of this hub."""

    def __init__(self, rt: Runtime, bus: Bus):
        self.rt = rt
        self.bus = bus
        self.mailboxes: set[asyncio.Queue] = set()
        self.latest: dict[str, Any] | None = None
        self.changed = asyncio.Event()
        self.task: asyncio.Task | None = None

    def join(self) -> asyncio.Queue:
        """A mailbox that always holds at most the newest snapshot; starts the pump."""
        box: asyncio.Queue = asyncio.Queue(maxsize=1)
        self.mailboxes.add(box)
        if self.latest is not None:
            box.put_nowait(self.latest)
        self.changed.set()  # a newcomer gets a fresh picture at once
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._pump(), name="supervisor-feed")
        return box

    def leave(self, box: asyncio.Queue) -> None:
        self.mailboxes.discard(box)
        if not self.mailboxes and self.task is not None:
            self.task.cancel()
            self.task = None
            self.latest = None

    def _deliver(self, snapshot: dict[str, Any]) -> None:
        self.latest = snapshot
        for box in self.mailboxes:
            if box.full():
                box.get_nowait()
            box.put_nowait(snapshot)

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        listener = asyncio.create_task(self._listen(), name="supervisor-feed-listen")
        last_pushed: dict[str, Any] | None = None
        last_push_at = 0.0
        try:
            while True:
                started = loop.time()
                self.changed.clear()
                try:
                    snapshot = await queue_snapshot(self.rt)
                except Exception:  # Redis away for a moment: try again on the next tick
                    log.warning("supervisor snapshot failed", exc_info=True)
                    snapshot = None
                if snapshot is not None:
                    now_cmp = comparable(snapshot)
                    if now_cmp != last_pushed or started - last_push_at >= REFRESH - MIN_INTERVAL:
                        self._deliver({"type": frames.QUEUE, **snapshot})
                        last_pushed, last_push_at = now_cmp, started
                try:
                    await asyncio.wait_for(self.changed.wait(), REFRESH)
                except TimeoutError:
                    pass
                pause = started + MIN_INTERVAL - loop.time()
                if pause > 0:
                    await asyncio.sleep(pause)  # coalesce a burst of changes into one push
        finally:
            listener.cancel()

    def _wake(self, channel: str, data: bytes) -> None:
        self.changed.set()

    async def _listen(self) -> None:
        """Wake the pump on every QUEUE_CHANNEL message, through the process's shared Bus
        (which resubscribes by itself after a Redis hiccup; the periodic refresh covers the gap)."""
        bus = self.bus
        await bus.subscribe(keys.QUEUE_CHANNEL, self._wake)
        try:
            await asyncio.Event().wait()
        finally:
            await bus.unsubscribe(keys.QUEUE_CHANNEL, self._wake)


def feed(state) -> SupervisorFeed:
    """This process's feed (kept on the app's state, made by the first supervisor socket)."""
    found = getattr(state, "supervisor_feed", None)
    if found is None:
        found = state.supervisor_feed = SupervisorFeed(state.rt, state.bus)
    return found


def _count(state, delta: int) -> None:
    """The hub's supervisor socket count (Registry.connection_counts(), /metrics)."""
    state.hub.registry.supervisors += delta


async def supervisor_socket(ws: WebSocket) -> None:
    """Checks origin and supervisor session, then streams `queue` frames until either side ends."""
    rt: Runtime = ws.app.state.rt
    allowed = origin_allowed(ws, rt)
    session = await read_session(rt, ws.cookies) if allowed else None
    binary = await accept_socket(ws)
    if not allowed or session is None or not session.is_supervisor:
        reason = "origin not allowed" if not allowed else "supervisor session required"
        await ws.close(frames.CLOSE_POLICY, reason)
        return
    shared = feed(ws.app.state)
    box = shared.join()
    _count(ws.app.state, +1)

    async def send(frame: dict[str, Any]) -> None:
        if binary:
            await ws.send_bytes(frames.encode(frame, True))
        else:
            await ws.send_text(frames.encode(frame, False))

    async def send_loop() -> None:
        while True:
            await send(await box.get())

    async def receive_loop() -> None:
        loop = asyncio.get_running_loop()
        window_start, count = loop.time(), 0
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes") if message.get("bytes") is not None else message.get("text")
            if data is not None and len(data) > frames.MAX_FRAME_BYTES:
                await ws.close(frames.CLOSE_TOO_BIG, "frame too big")
                return
            now = loop.time()
            if now - window_start > 60:
                window_start, count = now, 0
            count += 1
            if count > INBOUND_PER_MINUTE:
                await ws.close(frames.CLOSE_POLICY, "too many frames")
                return
            try:
                frame = frames.decode(data)
                if frame["type"] == frames.REFRESH:
                    shared.changed.set()
                    continue
                raise frames.FrameError(frames.BAD_FRAME, f"unknown frame type {frame['type'][:frames.MAX_TYPE_CHARS]!r}")
            except frames.FrameError as exc:
                await send(frames.error(exc.code, exc.message))

    revoked = asyncio.Event()  # the user's sessions were ended (agents.accounts.end_sessions)
    user_channel = keys.agent_channel(session.username)

    def on_user_event(channel: str, data: bytes) -> None:
        if msgpack.unpackb(data).get("type") == frames.EVENT_REVOKED:
            revoked.set()

    async def session_loop() -> None:
        while True:
            try:
                await asyncio.wait_for(revoked.wait(), SESSION_CHECK)
            except asyncio.TimeoutError:
                pass
            revoked.clear()
            if await read_session(rt, ws.cookies) is None:
                await ws.close(frames.CLOSE_POLICY, "session ended")
                return

    await ws.app.state.bus.subscribe(user_channel, on_user_event)
    tasks = [asyncio.create_task(c) for c in (send_loop(), receive_loop(), session_loop())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await ws.app.state.bus.unsubscribe(user_channel, on_user_event)
        shared.leave(box)
        _count(ws.app.state, -1)


routes = [WebSocketRoute("/ws/supervisor", supervisor_socket)]
