"""chat/fresh_read.py: a read shared by the callers who ask together, never older than a question."""

from __future__ import annotations

import asyncio
import gc

import pytest

from chat.fresh_read import FreshRead


class Counter:
    """A read that returns how many reads have started, and ends when the test lets it."""

    def __init__(self) -> None:
        self.started = 0
        self.gates: list[asyncio.Event] = []

    async def read(self) -> int:
        self.started += 1
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        return self.started

    async def open_next(self) -> None:
        while not self.gates:
            await asyncio.sleep(0)
        self.gates.pop(0).set()


async def test_callers_asking_during_one_read_share_the_next():
    """Fifty questions asked while a read is in flight cost one more read, not fifty."""
    counter = Counter()
    shared = FreshRead(counter.read)
    first = asyncio.ensure_future(shared())
    await asyncio.sleep(0)
    callers = [asyncio.ensure_future(shared()) for _ in range(50)]
    await counter.open_next()
    await counter.open_next()
    assert await first == 1
    assert await asyncio.gather(*callers) == [2] * 50
    assert counter.started == 2


async def test_a_caller_asking_during_a_read_does_not_get_that_read():
    """A question asked while a read is in flight waits for a read started after it."""
    counter = Counter()
    shared = FreshRead(counter.read)
    first = asyncio.ensure_future(shared())
    await asyncio.sleep(0)
    late = asyncio.ensure_future(shared())
    await counter.open_next()
    assert await first == 1
    await asyncio.sleep(0)
    assert not late.done()
    await counter.open_next()
    assert await late == 2


async def test_a_failed_read_fails_its_callers_and_the_next_read_runs():
    """An error reaches the callers of that read; those who asked meanwhile get the next one."""
    calls = []

    async def read() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("redis away")
        return "back"

    shared = FreshRead(read)
    failed, after = await asyncio.gather(shared(), shared(), return_exceptions=True)
    assert isinstance(failed, ConnectionError)
    assert after == "back"


async def test_a_cancelled_caller_leaves_the_read_to_the_others():
    """One caller giving up does not cancel the read the others wait for."""
    counter = Counter()
    shared = FreshRead(counter.read)
    first = asyncio.ensure_future(shared())
    await asyncio.sleep(0)
    leaving, staying = asyncio.ensure_future(shared()), asyncio.ensure_future(shared())
    await asyncio.sleep(0)
    leaving.cancel()
    await counter.open_next()
    await counter.open_next()
    assert (await first, await staying) == (1, 2)
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_a_failed_read_nobody_waits_for_is_not_reported_as_unretrieved():
    """A read that fails after its only caller gave up leaves no 'exception never retrieved'."""
    gate = asyncio.Event()

    async def read() -> str:
        await gate.wait()
        raise ConnectionError("redis away")

    seen: list[dict] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        shared = FreshRead(read)
        caller = asyncio.ensure_future(shared())
        await asyncio.sleep(0)
        caller.cancel()
        gate.set()
        for _ in range(5):
            await asyncio.sleep(0)
        del shared, caller
        gc.collect()
        assert not [c for c in seen if "never retrieved" in str(c.get("message", ""))]
    finally:
        loop.set_exception_handler(None)
