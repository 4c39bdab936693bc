"""The only two ways a test waits: on a condition, never for a fixed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any, Callable


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
               message: str = "condition") -> Any:
    """Poll a condition from plain (threaded or synchronous) code: return its first truthy
    value or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(interval)


async def eventually(check: Callable[[], Any], timeout: float = 10.0, message: str = "condition",
                     interval: float = 0.02) -> Any:
    """The async wait_until: poll a condition (plain or async) in the test's event loop;
    return its first truthy value or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await asyncio.sleep(interval)
