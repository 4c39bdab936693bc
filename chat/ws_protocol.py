"""uvicorn's WebSocket protocol (websockets-sansio) made lighter per socket: a hub holds tens of
thousands of idle sockets, and what each keeps for its whole life counts (issue 17: under
25 KiB per idle visitor socket).

Per socket, uvicorn's protocol keeps an asyncio.Queue for the frames received (three deques
and an Event, about 2.5 KiB, for a queue that holds one message at a time) and an Event for
"the transport takes writes" (a deque, 0.8 KiB); it keeps the handshake request's headers (as
websockets parsed them: a dict of lists, a list of pairs and their strings, 3 to 4 KiB from a
browser) after the application got them, in bytes, in its scope, and the handshake response
after it was sent. LeanWebSocketProtocol swaps the Queue and the Event for Inbox and Flag
below (same behaviour for the way uvicorn uses them, storage only while in use), and lets go
of the handshake request's headers and of the response once they served. Nothing else
changes: frames, limits, keepalive and closing are uvicorn's.
"""

from __future__ import annotations

import asyncio
import collections
import struct
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State


class Flag:
    """asyncio.Event's set/clear/wait, holding a list of waiters only while some task
    waits (an asyncio.Event keeps a deque for its whole life)."""

    __slots__ = ("_value", "_waiters")

    def __init__(self, value: bool = False) -> None:
        self._value = value
        self._waiters: list[asyncio.Future] | None = None

    def set(self) -> None:
        if self._value:
            return
        self._value = True
        for fut in self._waiters or ():
            if not fut.done():
                fut.set_result(True)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        """Until the flag is set (at once if it is)."""
        if self._value:
            return True
        fut = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(fut)
        try:
            await fut
            return True
        finally:
            self._waiters.remove(fut)
            if not self._waiters:
                self._waiters = None


class Inbox:
    """An unbounded FIFO with asyncio.Queue's put_nowait/get/empty, its storage made
    only while it holds something or someone waits. uvicorn puts each frame received (and
    the disconnect) and pauses reading until the application took them all, so it is nearly
    always empty."""

    __slots__ = ("_items", "_getters")

    def __init__(self) -> None:
        self._items: collections.deque[Any] | None = None
        self._getters: list[asyncio.Future] | None = None  # nearly always one: the handler

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = collections.deque()
        self._items.append(item)
        self._wake_next()

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item

    async def get(self) -> Any:
        """The oldest item, waiting for one if need be (as asyncio.Queue.get, cancellation
        included: a getter cancelled after it was woken passes the wake-up on)."""
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                if self._getters is not None:
                    try:
                        self._getters.remove(getter)
                    except ValueError:
                        pass
                if self._items and not getter.cancelled():
                    self._wake_next()
                raise
        return self.get_nowait()

    def _wake_next(self) -> None:
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                break
        if not getters:
            self._getters = None


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, lighter per socket (see the module's docstring);
    for uvicorn.Config(ws=...)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag(True)  # type: ignore[assignment]

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # The scope has its own copy of the headers (in bytes, as ASGI has them); websockets'
        # parser and uvicorn still hold the request, which nothing reads again.
        event.headers.clear()

    def start_keepalive(self) -> None:
        # uvicorn calls this once, right after the handshake response went out: nothing reads
        # the response again.
        super().start_keepalive()
        self.response = None  # type: ignore[assignment]

    def send_frame_now(self, data: bytes, binary: bool) -> bool:
        """Write one data frame now, as ``send`` does for a ``websocket.send`` message but
        without the ASGI message, starlette's and uvicorn's awaits and websockets' Frame
        object around it: a place in line is a few dozen bytes, sent to every waiting
        socket when the line moves. False when ``send`` must do it: the
        transport paused for a slow reader, the socket not open, an extension in use."""
        if (not self.writable._value or self.close_sent or not self.handshake_complete or self.disconnected
                or self.initial_response is not None or self.conn.state is not State.OPEN or self.conn.extensions):
            return False
        n = len(data)
        first = 0x82 if binary else 0x81  # FIN and the opcode; a server's frames are not masked
        if n < 126:
            header = bytes((first, n))
        elif n < 65536:
            header = struct.pack("!BBH", first, 126, n)
        else:
            header = struct.pack("!BBQ", first, 127, n)
        self.transport.write(header + data)
        return True
