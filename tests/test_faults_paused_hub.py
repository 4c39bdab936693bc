"""A hub is paused (SIGSTOP) past agent_grace while its agent holds a chat: the chat is queued
again and another agent, on another hub, takes it. When the paused hub wakes up (SIGCONT),
its agent's socket still lists the chat, but Redis decides: what the old holder sends to that
chat is refused with `not_allowed` and changes nothing, and it is told `released`."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

import msgpack
import pytest

from chat import keys
from tests.support.clients import agent, Client, visitor
from tests.support.servers import hub_env, HubProcess
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def sleepy_hub(redis_url, data_root, test_config_path):
    """A second hub that the tests pause and resume; never left paused."""
    process = HubProcess(hub_env(redis_url, data_root / "paused-hub", test_config_path), data_root / "paused-hub")
    process.start()
    yield process
    os.kill(process.process.pid, signal.SIGCONT)
    process.terminate()


@dataclass
class Stolen:
    old: Client      # agent A's socket on the paused hub, which still lists the chat
    new: Client      # agent B's socket on the other hub, which took the chat
    visitor: Client
    chat_id: str
    new_holder: str


@pytest.fixture
async def stolen(hub, sleepy_hub, rds, lang):
    """Agent A (on the sleepy hub) holds a chat; the hub is paused past agent_grace, the chat is
    requeued and agent B (on the session's hub) takes it. The test then has A act, and wakes
    the hub with `wake()`; the fixture wakes it in any case."""
    pid = sleepy_hub.process.pid
    # B is online but busy with another chat, so that the requeued chat waits for B (with
    # nobody online for its language it would turn offline instead).
    new, _ = await agent(hub, rds, f"b-{lang}", [lang], name="Bob", max_chats=1)
    first, _ = await visitor(hub, lang)
    first_id = (await new.expect("assigned"))["chat_id"]
    old, _ = await agent(sleepy_hub, rds, f"a-{lang}", [lang], name="Ann")
    ada, welcome = await visitor(hub, lang)
    chat_id = welcome["chat_id"]
    await old.expect("assigned", chat_id=chat_id)
    await ada.expect("assigned", agent={"name": "Ann"})
    os.kill(pid, signal.SIGSTOP)
    try:
        async def requeued() -> bool:
            raw = await rds.hget(keys.ROUTE, chat_id)
            return bool(raw) and msgpack.unpackb(raw).get("state") == "queued"

        await eventually(requeued, 15, message="the paused agent's chat to be queued again")
        await new.send(type="close", chat_id=first_id, resolution="resolved")  # B's freed slot takes it
        await new.expect("assigned", chat_id=chat_id)
        await ada.expect("assigned", agent={"name": "Bob"})
        yield Stolen(old, new, ada, chat_id, f"b-{lang}")
    finally:
        os.kill(pid, signal.SIGCONT)
    for client in (old, new, ada, first):
        await client.close()


def wake(hub: HubProcess) -> None:
    os.kill(hub.process.pid, signal.SIGCONT)


async def test_old_holders_message_is_refused_and_not_stored(stolen, sleepy_hub, rds):
    """A message the old holder sent while its hub was paused gets not_allowed and reaches neither log nor visitor."""
    await stolen.old.send(type="message", chat_id=stolen.chat_id, text="I am still here", client_id="stale")
    wake(sleepy_hub)
    assert (await stolen.old.expect("error", code="not_allowed"))
    await stolen.new.send(type="message", chat_id=stolen.chat_id, text="Bob here", client_id="fresh")
    await stolen.visitor.expect("message", client_id="fresh")
    stored = [msgpack.unpackb(m).get("client_id") for m in await rds.lrange(keys.chat_log(stolen.chat_id), 0, -1)]
    assert "stale" not in stored
    assert not [f for f in stolen.visitor.received if f.get("client_id") == "stale"]


async def test_old_holders_close_leaves_the_new_holders_chat_open(stolen, sleepy_hub, rds):
    """A close from the old holder gets not_allowed; the chat stays open with the new holder, who can still write."""
    await stolen.old.send(type="close", chat_id=stolen.chat_id, resolution="resolved")
    wake(sleepy_hub)
    await stolen.old.expect("error", code="not_allowed")
    await stolen.new.send(type="message", chat_id=stolen.chat_id, text="still with you", client_id="after")
    await stolen.visitor.expect("message", client_id="after")
    assert (await rds.hget(keys.chat(stolen.chat_id), "status")) == b"active"
    assert msgpack.unpackb(await rds.hget(keys.ROUTE, stolen.chat_id))["agent"] == stolen.new_holder
    assert not [f for f in stolen.visitor.received if f.get("type") == "closed"]


async def test_old_holders_transfer_to_the_queue_is_refused(stolen, sleepy_hub, rds):
    """A transfer from the old holder gets not_allowed; the new holder keeps the chat."""
    await stolen.old.send(type="transfer", chat_id=stolen.chat_id, to="queue")
    wake(sleepy_hub)
    await stolen.old.expect("error", code="not_allowed")
    await stolen.new.send(type="message", chat_id=stolen.chat_id, text="still mine", client_id="kept")
    await stolen.visitor.expect("message", client_id="kept")
    assert msgpack.unpackb(await rds.hget(keys.ROUTE, stolen.chat_id))["agent"] == stolen.new_holder
    assert not [f for f in stolen.new.received if f.get("type") == "released"]


async def test_old_holder_is_told_released_when_its_chat_was_requeued(stolen, sleepy_hub):
    """Once its hub wakes up, the old holder's socket gets `released` for the chat it lost, unasked."""
    wake(sleepy_hub)
    await stolen.old.expect("released", chat_id=stolen.chat_id)
