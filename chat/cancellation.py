"""Honouring a cancellation that a library swallowed.

redis-py and aiosmtplib can turn a cancel into an error of their own (or, with Python 3.11's
asyncio.timeout, into a quiet timeout). A loop that catches those errors and goes on must
still stop when its task is being cancelled: it calls this before it waits again."""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Raise CancelledError if the current task has a cancel request pending."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
