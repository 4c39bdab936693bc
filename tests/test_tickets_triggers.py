"""The four ways a chat becomes an email ticket, end to end: a real hub, a real SMTP server.

Each trigger makes exactly one ticket per chat, one confirmation to the visitor and one mail
to the support inbox, both with the reference. Timers are short in this hub's config.
"""

from __future__ import annotations

import time

import pytest

from chat import keys
from chat.identity import sign
from tests.support.clients import agent, visitor
from tests.support.mail import SmtpServer, SUPPORT
from tests.support.redis import DATABASES
from tests.support.servers import hub_env, HubProcess, TEST_SITE_SECRET
from tests.support.waiting import eventually

DB = DATABASES["tickets_triggers"]
CONFIG = """
[plans.free]
max_wait = 600
hours = "24/7"

[plans.plus]
head_start = 0
max_wait = 0.5
hours = "24/7"

[timing]
agent_grace = 30
visitor_grace = 0.5
offline_idle = 0.5
wait_choice_timeout = 0.5
heartbeat = 0.2
"""


@pytest.fixture(scope="module")
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ticket_redis_url(redis_url) -> str:
    return f"{redis_url}?db={DB}"


@pytest.fixture(scope="module")
def ticket_env(ticket_redis_url, smtp, tmp_path_factory):
    data = tmp_path_factory.mktemp("tickets-hub")
    config = data / "livechat.toml"
    config.write_text(CONFIG)
    return hub_env(ticket_redis_url, data, config, SMTP_URL=smtp.url, LIVECHAT_SUPPORT_ADDRESS=SUPPORT), data


@pytest.fixture(scope="module")
def ticket_hub(ticket_env):
    env, data = ticket_env
    process = HubProcess(env, data).start()
    yield process
    process.terminate()


@pytest.fixture
async def trds(ticket_redis_url):
    from redis.asyncio import Redis

    client = Redis.from_url(ticket_redis_url)
    yield client
    await client.aclose()


def plus_token(email: str) -> str:
    return sign(TEST_SITE_SECRET, {"sub": email, "plan": "plus", "email": email, "exp": int(time.time()) + 600})


async def mails_for(smtp: SmtpServer, ref: str, visitor_email: str | None) -> None:
    """Exactly one confirmation (if there is an address) and one inbox mail carry the ref."""
    def arrived():
        inbox = [m for m in smtp.to(SUPPORT) if ref in m.message["Subject"]]
        confirmations = [m for m in smtp.to(visitor_email) if ref in m.message["Subject"]] if visitor_email else []
        return len(inbox) >= 1 and (len(confirmations) >= 1 or not visitor_email)

    await eventually(arrived, 15, f"mail for {ref}")
    assert len([m for m in smtp.to(SUPPORT) if ref in m.message["Subject"]]) == 1
    if visitor_email:
        assert len([m for m in smtp.to(visitor_email) if ref in m.message["Subject"]]) == 1


async def one_ticket(trds, chat_id: str, ref: str, trigger: str) -> None:
    assert (await trds.get(keys.chat_ticket(chat_id))).decode() == ref
    ticket = await trds.hgetall(keys.ticket(ref))
    assert ticket[b"trigger"].decode() == trigger
    await eventually(lambda: _status_is(trds, chat_id, b"closed"), 10, "chat closed")


async def _status_is(trds, chat_id: str, status: bytes) -> bool:
    return await trds.hget(keys.chat(chat_id), "status") == status


async def test_offline_chat_becomes_a_ticket_when_the_visitor_leaves(ticket_hub, trds, smtp, lang):
    """Nobody online: the visitor's message becomes a ticket with a reference when they leave."""
    ada, welcome = await visitor(ticket_hub, lang, name="Ada", email=f"ada-{lang}@example.org")
    assert welcome["status"] == "offline"
    assert (await ada.expect("offline"))["reason"] == "no_agents"
    await ada.send(type="message", text="My account is locked", client_id="1")
    await ada.expect("message", client_id="1")
    await ada.send(type="leave")
    ref = (await ada.expect("ticket"))["ref"]
    closed = await ada.expect("closed")
    assert closed["reason"] == "ticket" and closed["ref"] == ref
    await one_ticket(trds, welcome["chat_id"], ref, "offline")
    await mails_for(smtp, ref, f"ada-{lang}@example.org")


async def test_offline_chat_that_goes_quiet_becomes_a_ticket(ticket_hub, trds, smtp, lang):
    """An offline chat idle past offline_idle becomes a ticket by itself."""
    ada, welcome = await visitor(ticket_hub, lang)
    await ada.send(type="contact", email=f"quiet-{lang}@example.org", name="Quiet")
    await ada.expect("contact")
    await ada.send(type="message", text="Please call me back", client_id="1")
    ref = (await ada.expect("ticket"))["ref"]
    await one_ticket(trds, welcome["chat_id"], ref, "offline")
    await mails_for(smtp, ref, f"quiet-{lang}@example.org")


async def _busy_agent(ticket_hub, trds, lang):
    """An agent whose only slot is taken, so that later chats wait in the queue."""
    sam, _ = await agent(ticket_hub, trds, f"a-{lang}", [lang], max_chats=1)
    first, _ = await visitor(ticket_hub, lang)
    await sam.expect("assigned")
    return sam, first


async def test_waiting_past_max_wait_offers_a_ticket_and_makes_one_on_request(ticket_hub, trds, smtp, lang):
    """Past max_wait the visitor is offered wait_or_ticket; choosing ticket makes it."""
    await _busy_agent(ticket_hub, trds, lang)
    email = f"plus-{lang}@example.org"
    ada, welcome = await visitor(ticket_hub, lang, identity=plus_token(email))
    assert welcome["plan"] == "plus" and welcome["status"] == "queued"
    offer = await ada.expect("wait_or_ticket")
    assert offer["max_wait_s"] == 0 and offer["timeout_s"] >= 0
    await ada.send(type="wait_or_ticket", choice="ticket")
    ref = (await ada.expect("ticket"))["ref"]
    await one_ticket(trds, welcome["chat_id"], ref, "max_wait")
    await mails_for(smtp, ref, email)


async def test_unanswered_wait_offer_becomes_a_ticket(ticket_hub, trds, smtp, lang):
    """A visitor who does not answer the wait offer in time gets a ticket."""
    await _busy_agent(ticket_hub, trds, lang)
    ada, welcome = await visitor(ticket_hub, lang, identity=plus_token(f"silent-{lang}@example.org"))
    await ada.expect("wait_or_ticket")
    ref = (await ada.expect("ticket"))["ref"]
    await one_ticket(trds, welcome["chat_id"], ref, "max_wait")


async def test_visitor_who_wrote_and_left_the_queue_gets_a_ticket(ticket_hub, trds, smtp, lang):
    """A queued visitor who wrote and vanished past the grace period becomes a ticket."""
    await _busy_agent(ticket_hub, trds, lang)
    email = f"left-{lang}@example.org"
    ada, welcome = await visitor(ticket_hub, lang, email=email)
    await ada.send(type="message", text="Is anyone there?", client_id="1")
    await ada.expect("message", client_id="1")
    await ada.close()
    ref = (await eventually(lambda: trds.get(keys.chat_ticket(welcome["chat_id"])), 15, "ticket")).decode()
    await one_ticket(trds, welcome["chat_id"], ref, "visitor_left")
    await mails_for(smtp, ref, email)


async def test_visitor_who_left_without_writing_makes_no_ticket(ticket_hub, trds, lang):
    """A queued visitor who never wrote and left is just closed, no ticket."""
    await _busy_agent(ticket_hub, trds, lang)
    ada, welcome = await visitor(ticket_hub, lang)
    await ada.send(type="leave")
    assert (await ada.expect("closed"))["reason"] == "visitor_left"
    assert await trds.get(keys.chat_ticket(welcome["chat_id"])) is None


async def test_agent_closing_unresolved_makes_a_ticket(ticket_hub, trds, smtp, lang):
    """close with resolution unresolved turns the chat into a ticket; both sides see the ref."""
    sam, _ = await agent(ticket_hub, trds, f"a-{lang}", [lang])
    email = f"unres-{lang}@example.org"
    ada, welcome = await visitor(ticket_hub, lang, email=email)
    chat_id = (await sam.expect("assigned"))["chat_id"]
    await ada.send(type="message", text="Two-factor reset please", client_id="1")
    await sam.expect("message", chat_id=chat_id)
    await sam.send(type="close", chat_id=chat_id, resolution="unresolved")
    ref = (await ada.expect("ticket"))["ref"]
    assert (await sam.expect("closed", chat_id=chat_id))["ref"] == ref
    await one_ticket(trds, chat_id, ref, "unresolved")
    await mails_for(smtp, ref, email)


async def test_ticket_without_any_contact_is_kept_for_agents(ticket_hub, trds, smtp, lang):
    """A ticket with no email address is stored; only the inbox is mailed."""
    ada, welcome = await visitor(ticket_hub, lang)
    await ada.send(type="message", text="anonymous question", client_id="1")
    await ada.send(type="leave")
    ref = (await ada.expect("ticket"))["ref"]
    assert await trds.exists(keys.ticket(ref))
    await mails_for(smtp, ref, None)


async def test_deadline_survives_a_restart_of_the_hub(ticket_env, trds, smtp, lang):
    """An idle deadline set before the hub stopped fires after it starts again."""
    env, data = ticket_env
    hub = HubProcess(env, data / "restart").start()
    ada, welcome = await visitor(hub, lang, email=f"restart-{lang}@example.org")
    await ada.send(type="message", text="before the restart", client_id="1")
    await ada.expect("message", client_id="1")
    hub.kill()
    assert await trds.zscore(keys.TIMERS, f"offline_idle|{welcome['chat_id']}") is not None
    again = HubProcess(env, data / "restart", port=hub.port).start()
    try:
        ref = (await eventually(lambda: trds.get(keys.chat_ticket(welcome["chat_id"])), 15, "ticket")).decode()
        await mails_for(smtp, ref, f"restart-{lang}@example.org")
    finally:
        again.terminate()


async def test_two_workers_racing_on_deadlines_make_one_ticket_each(ticket_env, ticket_hub, trds, smtp, lang):
    """Two extra worker processes race the hub for the same deadlines: one ticket per chat."""
    env, data = ticket_env
    workers = [HubProcess(env, data / f"worker{i}", command="worker").start(wait=False) for i in range(2)]
    try:
        chats = []
        for i in range(6):
            client, welcome = await visitor(ticket_hub, lang, email=f"race{i}-{lang}@example.org")
            await client.send(type="message", text=f"race {i}", client_id="1")
            chats.append((client, welcome))
        refs = [(await client.expect("ticket"))["ref"] for client, _ in chats]
        assert len(set(refs)) == 6
        for (client, welcome), ref in zip(chats, refs):
            await mails_for(smtp, ref, f"race{refs.index(ref)}-{lang}@example.org")
    finally:
        for worker in workers:
            worker.terminate()


async def test_visitor_named_with_a_nel_gets_a_ticket_and_mail(ticket_hub, trds, smtp, lang):
    """A NEL in the visitor's name (a line break to the email library) still makes the ticket and its mails."""
    eve, welcome = await visitor(ticket_hub, lang, name="Eve\u0085X", email=f"nel-{lang}@example.org")
    await eve.send(type="message", text="hello", client_id="1")
    await eve.expect("message", client_id="1")
    await eve.send(type="leave")
    ref = (await eve.expect("ticket"))["ref"]
    await one_ticket(trds, welcome["chat_id"], ref, "offline")
    await mails_for(smtp, ref, f"nel-{lang}@example.org")
    assert "Eve X" in next(m for m in smtp.to(SUPPORT) if ref in m.message["Subject"]).message["Subject"]


async def test_quiet_chats_become_tickets_when_the_first_due_has_a_nel_in_its_name(ticket_hub, trds, smtp, lang):
    """Offline chats going quiet together all become tickets and close, the NEL-named one (first due) too."""
    names = ["Eve\u0085X"] + [f"V{i}" for i in range(5)]
    chats = [await visitor(ticket_hub, lang, name=name, email=f"q{i}-{lang}@example.org") for i, name in enumerate(names)]
    for client, _ in chats:
        await client.send(type="message", text="going quiet", client_id="1")
    for client, welcome in chats:
        ref = (await client.expect("ticket", timeout=15))["ref"]
        await one_ticket(trds, welcome["chat_id"], ref, "offline")
