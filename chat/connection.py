"""What every client socket shares: JSON or MessagePack coding, a bounded send queue (a
client that stops reading is cut off instead of growing the hub's memory), a rate limit, and
the origin check of the sockets that carry a session cookie (agents', supervisors')."""

from __future__ import annotations

import asyncio
import collections
import logging
import sys
import time
from typing import TYPE_CHECKING, Any, Awaitable
from urllib.parse import urlsplit

import msgpack
from redis.exceptions import RedisError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from chat import frames, keys, windows
from chat.config import Limits
from chat.frames import FrameError
from chat.runtime import Runtime
from chat.windows import is_loopback
from chat.ws_protocol import Flag

if TYPE_CHECKING:
    from chat.hub import Hub

log = logging.getLogger("livechat.connection")

MAX_QUEUED_FRAMES = 1000  # the byte bound is [limits] send_queue_bytes (chat/config.py)
CLOSE_WAIT = 10.0  # a cut-off slow reader gets this long to read its backlog up to the close frame
STALL_WAIT = 2.0  # a replay waiting for room gives up on a client that took nothing for this long


def _size(data: str | bytes) -> int:
    """Memory a queued frame holds: a str of emoji takes 4 bytes a character, so len() of a
    str would let a queue of non-Latin text grow four times past its limit."""
    return len(data) if isinstance(data, bytes) else sys.getsizeof(data)


class TokenBucket:
    """rate frames per second with bursts up to burst."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


NEW_CHAT_WINDOW = 60  # seconds: [limits] new_chats_per_minute counts per window


async def new_chat_allowed(rt: Runtime, host: str, who: str) -> bool:
    """Count one new visitor chat for a client address and say whether it is within
    [limits] new_chats_per_minute. ``who`` is the address's salted hash: the counter in
    Redis (shared by every hub behind the load balancer) never holds a raw IP. Refused
    attempts count too, so a flood stays refused until its window ends. Loopback is not
    limited: it is a local tool (health check, load test), or a proxy that forwards no
    client address, and then every visitor would share one allowance."""
    limit = rt.config.limits.new_chats_per_minute
    if not limit or is_loopback(host):
        return True
    return await windows.within(rt.redis, keys.new_chats(who), limit, NEW_CHAT_WINDOW)


def origin_allowed(ws: WebSocket, rt: Runtime) -> bool:
    """Cross-site WebSocket hijacking guard: a browser always sends Origin, and only the hub's
    own origin (or one listed in LIVECHAT_ALLOWED_ORIGINS) may use a session cookie here.
    Clients that are not browsers send no Origin and carry the cookie on purpose."""
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if origin in rt.settings.allowed_origins or (rt.settings.public_url and origin == rt.settings.public_url):
        return True
    host = ws.headers.get("host", "")
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == host


async def accept_socket(ws: WebSocket) -> bool:
    """Accept the socket, in MessagePack if the client offers it (frames.MSGPACK_SUBPROTOCOL),
    else in JSON; True for MessagePack."""
    binary = frames.MSGPACK_SUBPROTOCOL in (ws.scope.get("subprotocols") or [])
    await ws.accept(subprotocol=frames.MSGPACK_SUBPROTOCOL if binary else None)
    return binary


class _Started:
    """A coroutine already started by hand (Connection._send_now) that is waiting on what it
    yielded: awaiting this runs it to its end, passing on what the task sends or throws in."""

    __slots__ = ("coro", "waiting_on")

    def __init__(self, coro: Any, waiting_on: Any):
        self.coro, self.waiting_on = coro, waiting_on

    def __await__(self):
        coro, waiting_on = self.coro, self.waiting_on
        while True:
            try:
                value = yield waiting_on
            except BaseException as exc:  # a cancellation: the coroutine gets it where it waits
                try:
                    waiting_on = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    waiting_on = coro.send(value)
                except StopIteration as stop:
                    return stop.value


class Closed(Exception):
    """The socket is gone (or being cut off); the handler should clean up and return."""


class Connection:
    kind = "client"
    strikes_before_close = 200

    def __init__(self, ws: WebSocket, rt: Runtime):
        self.ws = ws
        self.rt = rt
        self.binary = False
        self._out: collections.deque[str | bytes] = collections.deque()
        self._out_bytes = 0
        self._max_bytes = rt.config.limits.send_queue_bytes
        self._writer: asyncio.Task | None = None
        self._bucket = TokenBucket(*self.frame_limit(rt.config.limits))
        self._strikes = 0
        self._last_warning = 0.0
        self.handler_task: asyncio.Task | None = None
        self.closing = False
        self._closer: asyncio.Task | None = None
        self._finishing = False  # the handler is on its way out by itself
        self._drained = Flag()  # an asyncio.Event would keep a deque for the socket's life
        self._sent_at = 0.0  # loop time the writer last handed a frame to the socket
        self._welcomed = False
        self._resync_wanted = False

    @property
    def hub(self) -> "Hub":
        """This process's hub (chat/hub.py), kept on the application's state."""
        return self.ws.app.state.hub

    async def resync_state(self) -> None:
        """After the bus was away: compare this socket's view with Redis (see catch_up_state).
        Before the socket's welcome went out, that waits until it has."""
        if self._welcomed:
            await self.catch_up_state()
        else:
            self._resync_wanted = True

    async def welcomed(self) -> None:
        """The welcome is sent; a resync asked for meanwhile runs now."""
        self._welcomed = True
        if self._resync_wanted:
            self._resync_wanted = False
            await self.catch_up_state()

    async def catch_up_state(self) -> None:
        """Send what changed while events were lost; sockets that follow chats override it."""

    def frame_limit(self, limits: Limits) -> tuple[float, float]:
        """Inbound frames per second and burst for this kind of socket ([limits] in the config)."""
        raise NotImplementedError

    async def accept(self) -> None:
        self.binary = await accept_socket(self.ws)
        self.handler_task = asyncio.current_task()

    # --- sending -----------------------------------------------------------------

    def send(self, frame: dict[str, Any]) -> None:
        self._enqueue(frames.encode(frame, self.binary))

    def send_all(self, *frames_: dict[str, Any]) -> None:
        """Send frames that go out together (a welcome and the state that follows it) in one
        write to the socket where it can: a write on a socket is a system call, and on loopback
        the kernel's whole receive path runs in it."""
        data = [frames.encode(frame, self.binary) for frame in frames_]
        if not self.closing and self._writer is None and not self._out:
            now = getattr(getattr(self.ws._send, "__self__", None), "send_frames_now", None)
            if now is not None and now([d if isinstance(d, bytes) else d.encode() for d in data], self.binary):
                self._sent_at = asyncio.get_running_loop().time()
                return
        for one in data:
            self._enqueue(one)

    def send_packed(self, packed: bytes, frame: dict[str, Any] | None) -> None:
        """Send a frame that is already msgpack (from the log) without re-encoding it twice."""
        if self.binary:
            self._enqueue(packed)
        else:
            self._enqueue(frames.encode(frame if frame is not None else msgpack.unpackb(packed), False))

    def _enqueue(self, data: str | bytes) -> None:
        if self.closing:
            return
        if self._writer is None and not self._out:
            self._send_now(data)
            return
        self._out.append(data)
        self._out_bytes += _size(data)
        # The frame at the head may be big (a welcome with long histories); the backlog may not.
        if len(self._out) > MAX_QUEUED_FRAMES or self._out_bytes - _size(self._out[0]) > self._max_bytes:
            log.info("%s socket stopped reading; closing it", self.kind)
            self.cut_off(frames.CLOSE_SLOW, "too slow: reconnect and resume")
            return
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())

    def _send_now(self, data: str | bytes) -> None:
        """Nothing is queued: hand the frame to the socket now, without a writer task (a task
        per frame was a good part of the CPU of sending places in line to many sockets). The
        socket's send completes at once unless the transport is paused for a client that reads
        slowly; then the writer task finishes that send and drains what is queued meanwhile."""
        # The server's protocol writes a frame at once when it can (chat/ws_protocol.py;
        # looked up here, not kept: one more attribute made every socket's dict larger);
        # under another server (a test client), frames go the ASGI way.
        now = getattr(getattr(self.ws._send, "__self__", None), "send_frame_now", None)
        if now is not None and (now(data, True) if isinstance(data, bytes) else now(data.encode(), False)):
            self._sent_at = asyncio.get_running_loop().time()
            return
        sending = self.ws.send_bytes(data) if isinstance(data, bytes) else self.ws.send_text(data)
        try:
            waiting_on = sending.send(None)
        except StopIteration:
            self._sent_at = asyncio.get_running_loop().time()
            return
        except Exception:
            # As from the writer task: the handler is stopped too (cut_off from the handler's
            # own task would leave that to the handler).
            asyncio.get_running_loop().call_soon(self.cut_off, None, "")
            return
        self._sent_at = asyncio.get_running_loop().time()
        self._writer = asyncio.ensure_future(self._drain(_Started(sending, waiting_on)))

    async def _drain(self, started: "_Started | None" = None) -> None:
        try:
            if started is not None:
                await started
            while self._out:
                data = self._out.popleft()
                self._out_bytes -= _size(data)
                self._sent_at = asyncio.get_running_loop().time()
                if self._out_bytes <= self._max_bytes // 2:
                    self._drained.set()
                if isinstance(data, bytes):
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_text(data)
        except Exception:
            self.cut_off(None, "")
        finally:
            self._writer = None

    async def room(self) -> None:
        """Until the send queue is at most half full. A replay from the log awaits this after
        each message, so it goes at the client's pace; a client that takes nothing at all for
        STALL_WAIT meanwhile is cut off like any slow consumer (the replay holds back live
        events while it waits, so it must not wait long on a client that stopped reading)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not self.closing and self._out_bytes > self._max_bytes // 2:
            remaining = max(self._sent_at, started) + STALL_WAIT - loop.time()
            if remaining <= 0:
                log.info("%s socket stopped reading; closing it", self.kind)
                self.cut_off(frames.CLOSE_SLOW, "too slow: reconnect and resume")
                return
            self._drained.clear()
            try:
                await asyncio.wait_for(self._drained.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def flush(self, timeout: float = 2.0) -> None:
        """Wait (bounded) until what was queued has been handed to the socket."""
        writer = self._writer
        if writer:
            try:
                await asyncio.wait_for(asyncio.shield(writer), timeout)
            except (asyncio.TimeoutError, Exception):
                pass

    def cut_off(self, code: int | None, reason: str) -> None:
        """Stop this connection from any context: close with code, end the handler. A slow
        consumer's backlog is dropped (that is the point of cutting it off); any other close
        first sends what is already queued, such as the rate_limited warning before a 1008."""
        if self.closing:
            return
        self.closing = True
        drop = code in (None, frames.CLOSE_SLOW)
        if drop:
            self._out.clear()
            self._out_bytes = 0
            if self._writer and self._writer is not asyncio.current_task():
                self._writer.cancel()
        self._drained.set()
        stop_handler = self.handler_task is not asyncio.current_task()  # else it stops by itself
        self._closer = asyncio.create_task(self._close_and_stop(code, reason, stop_handler, flush=not drop))

    async def _close_and_stop(self, code: int | None, reason: str, stop_handler: bool = True,
                              flush: bool = False) -> None:
        """End the handler (it stops reading frames, and leaves the hub once the close frame is
        out: see finish), then send the close frame. To a client that stopped reading, that
        frame goes out only after what the server's socket buffers already hold for it, so it
        may wait up to CLOSE_WAIT; the server must not drop the connection without it, or the
        client would see 1006 instead of the code that tells it to resume."""
        if stop_handler and self.handler_task and not self._finishing:
            self.handler_task.cancel()
        if flush:
            await self.flush()
        if code is not None and self.ws.application_state == WebSocketState.CONNECTED:
            try:
                await asyncio.wait_for(self.ws.close(code, reason), CLOSE_WAIT)
            except Exception:
                pass

    async def finish(self) -> None:
        """Called by the handler on its way out: a cut-off socket's close frame must be sent
        before the handler returns (the server then ends the connection at once)."""
        self._finishing = True
        closer = self._closer
        if closer is not None and not closer.done() and closer is not asyncio.current_task():
            try:
                await asyncio.wait_for(asyncio.shield(closer), CLOSE_WAIT + 1)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass

    async def close(self, code: int = frames.CLOSE_NORMAL, reason: str = "") -> None:
        self._finishing = True
        await self.flush()
        self.closing = True
        if self.ws.application_state == WebSocketState.CONNECTED:
            try:
                await asyncio.wait_for(self.ws.close(code, reason), 2.0)
            except Exception:
                pass

    async def serve(self, start: Awaitable[None]) -> None:
        """Finish setting the connection up (start), then read frames until the client goes.
        A start that cannot reach Redis, or refuses the client, ends with a clear error."""
        try:
            await start
        except FrameError as exc:
            self.error(exc.code, exc.message)
            await self.close(frames.CLOSE_POLICY, exc.message[:100])
            return
        except RedisError:
            self.error(frames.UNAVAILABLE, "the service is briefly unavailable: reconnect in a moment")
            await self.close(frames.CLOSE_UNAVAILABLE, "unavailable")
            return
        del start  # a finished coroutine keeps its frame's memory: not for the socket's whole life
        try:
            await receive_loop(self, self.handle)
        finally:
            await self.detach()

    async def handle(self, frame: dict[str, Any]) -> None:
        raise NotImplementedError

    async def detach(self) -> None:
        """Forget this connection everywhere (the client is gone)."""

    def error(self, code: str, message: str, refused: dict[str, Any] | None = None) -> None:
        """Send an error; one that refuses a frame names it (frames.error says how)."""
        self.send(frames.error(code, message, refused))

    # --- receiving ---------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        """The next well-formed frame. Raises Closed at disconnect and FrameError for a bad
        frame (the caller answers with an error frame and goes on)."""
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            raise Closed()
        data = message.get("text")
        if data is None:
            data = message.get("bytes")
        if not self._bucket.take():
            self._strikes += 1
            if self._strikes > self.strikes_before_close:
                self.cut_off(frames.CLOSE_POLICY, "rate limit exceeded")
                raise Closed()
            now = time.monotonic()
            if now - self._last_warning > 1.0:
                self._last_warning = now
                refused = FrameError(frames.RATE_LIMITED, "too many frames: slow down")
                refused.frame = _decoded(data)
                raise refused
            raise _Dropped()
        self._strikes = max(0, self._strikes - 1)
        return frames.decode(data)


def _decoded(data: str | bytes | None) -> dict[str, Any] | None:
    """The frame a refusal is about, if it can be read at all."""
    try:
        return frames.decode(data)
    except FrameError:
        return None


class _Dropped(FrameError):
    """A frame refused by the rate limit after its warning was already sent this second."""

    def __init__(self) -> None:
        super().__init__(frames.RATE_LIMITED, "")


def is_silent(exc: FrameError) -> bool:
    return isinstance(exc, _Dropped)


async def receive_loop(conn: Connection, handle) -> None:
    """Read frames until the client goes; refused frames get an error frame, nothing more."""
    try:
        while True:
            try:
                frame = await conn.receive()
            except FrameError as exc:
                if not is_silent(exc):
                    conn.error(exc.code, exc.message, getattr(exc, "frame", None))
                continue
            try:
                await handle(frame)
            except FrameError as exc:
                conn.error(exc.code, exc.message, frame)
            except RedisError:
                log.warning("redis unavailable while handling a %s frame", frame.get("type"))
                conn.error(frames.UNAVAILABLE, "the service is briefly unavailable: nothing was stored, send it again",
                           frame)
    except (Closed, WebSocketDisconnect, asyncio.CancelledError):
        pass
    await conn.finish()
