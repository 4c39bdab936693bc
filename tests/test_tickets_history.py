"""An agent sees a verified customer's own earlier tickets, kept apart from tickets anyone
filed under the same address without being verified."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

from chat.identity import sign
from tests.support.clients import agent, login_cookie, visitor
from tests.support.servers import TEST_SITE_SECRET


def identity(sub: str, email: str) -> str:
    """What the customer's own site signs for a signed-in customer."""
    return sign(TEST_SITE_SECRET, {"sub": sub, "plan": "plus", "email": email, "name": "Vera",
                                   "exp": int(time.time()) + 600})


async def unresolved_ticket(desk, client, welcome) -> str:
    await desk.expect("assigned", chat_id=welcome["chat_id"])
    await client.send(type="message", text="Please look into my invoice.", client_id="m1")
    await client.expect("message", text="Please look into my invoice.")
    await desk.send(type="close", chat_id=welcome["chat_id"], resolution="unresolved")
    ref = (await client.expect("closed"))["ref"]
    await client.close()
    return ref


async def test_earlier_tickets_of_a_verified_customer_exclude_anonymous_ones(hub, rds, lang):
    """Tickets filed anonymously under the customer's address are listed apart, as unverified."""
    address = f"vera-{lang}@example.org"
    desk, _ = await agent(hub, rds, f"a-{lang}", [lang], max_chats=3)
    own = await unresolved_ticket(desk, *await visitor(hub, lang, identity=identity(f"cust-{lang}", address)))
    anonymous = await unresolved_ticket(desk, *await visitor(hub, lang, name="Not Vera", email=address))
    client, welcome = await visitor(hub, lang, identity=identity(f"cust-{lang}", address))
    assigned = await desk.expect("assigned", chat_id=welcome["chat_id"])
    assert [t["ref"] for t in assigned["tickets"]] == [own]
    assert [t["ref"] for t in assigned["unverified_tickets"]] == [anonymous]
    await client.close()
    await desk.close()


async def test_a_verified_customers_ticket_lists_their_earlier_chats_only(hub, rds, lang):
    """The ticket's customer panel lists the customer's own closed chats, not others' under the address."""
    address = f"walt-{lang}@example.org"
    desk, _ = await agent(hub, rds, f"b-{lang}", [lang], max_chats=3)

    async def resolved(client, welcome) -> str:
        await desk.expect("assigned", chat_id=welcome["chat_id"])
        await client.send(type="message", text="Thanks, that is all.", client_id="m1")  # not a silent chat
        await client.expect("message", text="Thanks, that is all.")
        await desk.send(type="close", chat_id=welcome["chat_id"], resolution="resolved")
        await client.expect("closed")
        await client.close()
        return welcome["chat_id"]

    earlier = await resolved(*await visitor(hub, lang, identity=identity(f"walt-{lang}", address)))
    await resolved(*await visitor(hub, lang, name="Not Walt", email=address))
    ref = await unresolved_ticket(desk, *await visitor(hub, lang, identity=identity(f"walt-{lang}", address)))
    cookie = await asyncio.to_thread(login_cookie, hub, f"b-{lang}")
    found = await asyncio.to_thread(lambda: json.loads(urllib.request.urlopen(urllib.request.Request(
        f"{hub.base_url}/api/tickets/{ref}", headers={"Cookie": cookie, "Accept": "application/json"}), timeout=10).read()))
    assert [c["chat_id"] for c in found["previous_chats"]] == [earlier]
    assert found["previous_chats"][0]["reason"] == "resolved"
    await desk.close()
