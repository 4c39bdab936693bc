"""Tickets in the agent's hands and the customer's, over sockets and HTTP: live ticket news
on the agent socket, who has a ticket open, the private ticket page, and the widget's
ticket calls."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from tests.clients import Client
from tests.servers import DATABASES, TEST_CONFIG
from tests.test_ticket_desk import Desk

INBOX = TEST_CONFIG


@pytest.fixture(scope="module")
def desk(redis_url, tmp_path_factory):
    desk = Desk(redis_url, tmp_path_factory.mktemp("inbox"), INBOX, DATABASES["ticket_inbox"])
    yield desk
    desk.stop()


async def agent_socket(desk: Desk, user: str) -> Client:
    """A dashboard's socket for this agent, past its welcome."""
    cookie, _ = await asyncio.to_thread(desk.session, user)
    ws = await websockets.connect(desk.hub.ws_url + "/ws/agent", additional_headers={"Cookie": cookie},
                                  ping_interval=None)
    client = Client(ws)
    await client.expect("welcome")
    return client


# --- live ticket news on the agent socket -------------------------------------------------


async def test_a_mailed_in_ticket_reaches_every_agent_socket_live(desk, lang):
    """A new ticket from mail is announced as ticket_changed to the agents' sockets."""
    sam, kim = await agent_socket(desk, "sam"), await agent_socket(desk, "kim")
    ref = await asyncio.to_thread(desk.new_ticket, f"lia-{lang}@example.org")
    await sam.expect("ticket_changed", ref=ref)
    await kim.expect("ticket_changed", ref=ref)
    await sam.close()
    await kim.close()


async def test_an_answer_is_announced_as_a_ticket_change(desk, lang):
    """An agent's note on a ticket reaches the other agents as ticket_changed."""
    ref = await asyncio.to_thread(desk.new_ticket, f"max-{lang}@example.org")
    kim = await agent_socket(desk, "kim")
    status, _ = await asyncio.to_thread(desk.call, "POST", f"/api/tickets/{ref}/messages",
                                        {"text": "Looking at it.", "internal": True}, "sam")
    assert status == 201
    await kim.expect("ticket_changed", ref=ref)
    await kim.close()


async def test_two_agents_on_one_ticket_see_each_other(desk, lang):
    """ticket_viewing from one agent reaches the other as ticket_viewers, replying included."""
    ref = await asyncio.to_thread(desk.new_ticket, f"ned-{lang}@example.org")
    sam, kim = await agent_socket(desk, "sam"), await agent_socket(desk, "kim")
    await kim.send(type="ticket_viewing", ref=ref, replying=False)
    await sam.send(type="ticket_viewing", ref=ref, replying=True)
    frame = await kim.expect("ticket_viewers", ref=ref, viewers=[
        {"username": "kim", "name": "Kim", "replying": False}, {"username": "sam", "name": "Sam", "replying": True}])
    assert frame["ref"] == ref
    await sam.close()
    await kim.expect("ticket_viewers", ref=ref, viewers=[{"username": "kim", "name": "Kim", "replying": False}])
    await kim.close()


async def test_viewing_an_unknown_ticket_is_refused(desk):
    """ticket_viewing of a reference that is no ticket gets not_found and is not announced."""
    sam = await agent_socket(desk, "sam")
    await sam.send(type="ticket_viewing", ref="LC-ZZZZZZ")
    error = await sam.expect("error")
    assert error["code"] == "not_found" and error["refused"] == "ticket_viewing"
    await sam.close()
