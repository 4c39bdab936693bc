"""The light stand-ins for asyncio.Queue and asyncio.Event that every hub socket holds
(chat/ws_protocol.py): they behave as the asyncio ones do where uvicorn and the send queue
use them. The hub's sockets themselves run on them in every test of a hub."""

from __future__ import annotations

import asyncio

from chat.ws_protocol import Flag, Inbox


async def test_inbox_hands_items_in_order_to_a_waiting_reader():
    """Items put while a reader waits, and after, come out in the order they went in."""
    inbox = Inbox()
    first = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    for item in ("a", "b", "c"):
        inbox.put_nowait(item)
    assert [await first, await inbox.get(), await inbox.get()] == ["a", "b", "c"]
    assert inbox.empty()


async def test_inbox_reader_cancelled_after_its_wake_up_passes_the_item_on():
    """A reader cancelled once woken (as asyncio.Queue.get) leaves the item to the next reader."""
    inbox = Inbox()
    first = asyncio.ensure_future(inbox.get())
    second = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("only")
    first.cancel()
    assert await asyncio.wait_for(second, 5) == "only"
    assert first.cancelled()


async def test_flag_wakes_every_waiter_and_waits_again_once_cleared():
    """set wakes all waiters; after clear, wait blocks until the next set."""
    flag = Flag()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    flag.clear()
    again = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    assert not again.done()
    flag.set()
    assert await asyncio.wait_for(again, 5) is True


async def test_a_flag_made_set_does_not_wait():
    """Flag(True), as uvicorn's "the transport takes writes", lets a writer through at once."""
    assert await asyncio.wait_for(Flag(True).wait(), 5) is True
