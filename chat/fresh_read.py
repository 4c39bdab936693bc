"""A read that many callers share without any of them getting an answer older than its
question: every caller gets the result of a read that *started after it asked*. Callers who
ask while a read is in flight wait for the next one, which starts as soon as that read ends
and serves all of them. A burst of a thousand hellos that each need the same figure from
Redis (how many visitors wait, which agents are online) then costs a couple of round trips,
not a thousand, and none of them can miss a write made before it asked (a cache, or joining
a read already in flight, could)."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Generic, TypeVar

T = TypeVar("T")


class FreshRead(Generic[T]):
    def __init__(self, read: Callable[[], Awaitable[T]]):
        self._read = read
        self._next: asyncio.Future[T] | None = None  # the read the callers waiting now will get
        self._busy = False

    async def __call__(self) -> T:
        answer = self._next
        if answer is None:
            answer = self._next = asyncio.get_running_loop().create_future()
            if not self._busy:
                self._start()
        return await asyncio.shield(answer)

    def _start(self) -> None:
        answer, self._next = self._next, None
        assert answer is not None
        self._busy = True
        # Every caller may have gone (cancelled) by the time a read fails: mark its error
        # as seen, so asyncio does not log it as never retrieved.
        answer.add_done_callback(lambda fut: fut.cancelled() or fut.exception())
        task = asyncio.ensure_future(self._read())
        task.add_done_callback(lambda done: self._ended(done, answer))

    def _ended(self, done: "asyncio.Future[T]", answer: "asyncio.Future[T]") -> None:
        self._busy = False
        if done.cancelled():
            answer.cancel()
        elif done.exception() is not None:
            answer.set_exception(done.exception())  # type: ignore[arg-type]
        else:
            answer.set_result(done.result())
        if self._next is not None:  # asked while that read was in flight
            self._start()
