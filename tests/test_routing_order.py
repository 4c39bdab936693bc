"""Who is served first: virtual arrival (arrived_at - head_start), FIFO within it, bounded
head starts, emergencies, and the abuse guard on the emergency flag.

Ordering with chosen arrival times goes straight through chat.queue.Queue on the real Redis
(the clock is an argument there); ordering through the hub uses real visitors and agents.
"""

from __future__ import annotations

import inspect
import re

import pytest

from chat import keys, queue as queue_module
from chat.config import parse_config
from chat.embedded_redis import EmbeddedRedis
from chat.plans import virtual_arrival
from chat.queue import CLAIM_SCRIPT, NO_TOPIC, AgentSkills, Queue, write_agent
from tests.support.clients import barrier, close_chat, fresh_address, token
from tests.support.redis import held, route
from tests.support.servers import TEST_CONFIG

CONFIG = parse_config(TEST_CONFIG)
FREE, VISIONARY = CONFIG.plans["free"], CONFIG.plans["visionary"]


async def online_agent(rds, username: str, langs: list[str], max_chats: int = 10, topics: list[str] | None = None,
                       status: str = "online") -> AgentSkills:
    """An agent's routing profile as the hub writes it, without a socket."""
    await write_agent(rds, username, {"name": username, "role": "agent", "langs": langs, "topics": topics or [],
                                      "max_chats": max_chats, "status": status})
    return AgentSkills(username, tuple(langs), tuple(topics or ()), max_chats)


async def enqueue(q: Queue, chat_id: str, lang: str, plan, arrived_at: float, topic: str = NO_TOPIC,
                  emergency: bool = False) -> None:
    score = virtual_arrival(arrived_at, plan, CONFIG.emergency_head_start if emergency else None)
    await q.enqueue(chat_id, lang=lang, topic=topic, plan=plan.name, score=score, arrived_at=arrived_at,
                    emergency=emergency)


async def drain(q: Queue, skills: AgentSkills) -> list[str]:
    """Claim until nothing is left: the order the agent is given its chats."""
    order = []
    while (chat_id := await q.claim(skills, 0.0)) is not None:
        order.append(chat_id)
        await q.remove(chat_id)
    return order


# --- ordering with an injected clock (Queue on the real Redis) --------------------------


def test_virtual_arrival_is_arrival_minus_head_start():
    """score = arrived_at - head_start[plan], and an emergency subtracts its own head start too."""
    assert virtual_arrival(10_000.0, FREE) == 10_000.0
    assert virtual_arrival(10_000.0, VISIONARY) == 10_000.0 - 900
    assert virtual_arrival(10_000.0, FREE, CONFIG.emergency_head_start) == 10_000.0 - 3600


async def test_visionary_arriving_later_is_claimed_before_free(rds, lang):
    """A visionary who arrives 10 minutes after a free visitor is still ahead (head start 15 min)."""
    q = Queue(rds)
    skills = await online_agent(rds, f"q-{lang}", [lang])
    await enqueue(q, f"{lang}-free", lang, FREE, arrived_at=1_000_000.0)
    await enqueue(q, f"{lang}-vis", lang, VISIONARY, arrived_at=1_000_600.0)
    assert await drain(q, skills) == [f"{lang}-vis", f"{lang}-free"]


async def test_free_visitor_who_waited_past_the_head_start_is_claimed_before_new_visionary(rds, lang):
    """The head start is bounded: a free visitor waiting longer than the difference goes first."""
    q = Queue(rds)
    skills = await online_agent(rds, f"q-{lang}", [lang])
    await enqueue(q, f"{lang}-free", lang, FREE, arrived_at=1_000_000.0)
    await enqueue(q, f"{lang}-vis", lang, VISIONARY, arrived_at=1_000_000.0 + VISIONARY.head_start + 1)
    assert await drain(q, skills) == [f"{lang}-free", f"{lang}-vis"]


async def test_same_plan_is_first_in_first_out(rds, lang):
    """Within one plan chats are served in arrival order, whatever order they were stored in."""
    q = Queue(rds)
    skills = await online_agent(rds, f"q-{lang}", [lang])
    arrivals = {f"{lang}-c": 1_000_002.5, f"{lang}-a": 1_000_000.0, f"{lang}-d": 1_000_003.0, f"{lang}-b": 1_000_001.0}
    for chat_id, arrived in arrivals.items():
        await enqueue(q, chat_id, lang, FREE, arrived)
    assert await drain(q, skills) == sorted(arrivals, key=arrivals.get)


async def test_emergency_is_claimed_before_an_earlier_visionary(rds, lang):
    """An emergency's head start (an hour) puts a free visitor ahead of a visionary who came first."""
    q = Queue(rds)
    skills = await online_agent(rds, f"q-{lang}", [lang])
    await enqueue(q, f"{lang}-vis", lang, VISIONARY, arrived_at=1_000_000.0)
    await enqueue(q, f"{lang}-sos", lang, FREE, arrived_at=1_000_060.0, emergency=True)
    assert await drain(q, skills) == [f"{lang}-sos", f"{lang}-vis"]


async def test_claim_gives_an_away_agent_nothing(rds, lang):
    """The claim script itself refuses an agent whose status is away."""
    q = Queue(rds)
    skills = await online_agent(rds, f"q-{lang}", [lang], status="away")
    await enqueue(q, f"{lang}-1", lang, FREE, 1_000_000.0)
    assert await q.claim(skills, 0.0) is None
    assert (await route(rds, f"{lang}-1"))["state"] == "queued"
    await q.remove(f"{lang}-1")


async def test_claim_stops_at_max_chats(rds, lang):
    """An agent with max_chats 2 is given two chats and no third, however many wait."""
    q = Queue(rds)
    skills = await online_agent(rds, f"q-{lang}", [lang], max_chats=2)
    for i in range(4):
        await enqueue(q, f"{lang}-{i}", lang, FREE, 1_000_000.0 + i)
    claimed = [await q.claim(skills, 0.0) for _ in range(4)]
    assert claimed == [f"{lang}-0", f"{lang}-1", None, None]
    assert await held(rds, skills.username) == {f"{lang}-0", f"{lang}-1"}
    for i in range(4):
        await q.remove(f"{lang}-{i}")
    assert await held(rds, skills.username) == set()


async def test_escalation_moves_a_waiting_chat_to_the_emergency_line(rds, lang):
    """rescore() gives a waiting chat its emergency score and the no-topic line of its language."""
    q = Queue(rds)
    specialist = await online_agent(rds, f"s-{lang}", [lang], topics=["security"])
    await enqueue(q, f"{lang}-1", lang, FREE, 1_000_000.0, topic="billing")
    assert await q.claim(specialist, 0.0) is None  # a security specialist does not take billing
    score = virtual_arrival(1_000_000.0, FREE, CONFIG.emergency_head_start)
    assert await q.rescore(f"{lang}-1", score=score, topic=NO_TOPIC, emergency=True)
    assert (await route(rds, f"{lang}-1"))["emergency"] is True
    assert await q.claim(specialist, 0.0) == f"{lang}-1"  # an emergency goes to any agent of the language
    await q.remove(f"{lang}-1")


async def test_escalation_leaves_a_chat_an_agent_already_claimed_alone(rds, lang):
    """rescore() after a claim changes nothing: the chat is not put back in line behind the agent."""
    q = Queue(rds)
    skills = await online_agent(rds, f"q-{lang}", [lang])
    await enqueue(q, f"{lang}-1", lang, FREE, 1_000_000.0)
    assert await q.claim(skills, 0.0) == f"{lang}-1"
    assert not await q.rescore(f"{lang}-1", score=0.0, topic=NO_TOPIC, emergency=True)
    assert (await route(rds, f"{lang}-1"))["state"] == "active"
    assert await rds.zscore(keys.queue(lang), f"{lang}-1") is None
    await q.remove(f"{lang}-1")


# --- claim cost: logarithmic, never a scan ------------------------------------------------


def test_candidate_queues_depend_only_on_the_agent():
    """The keys a claim reads are the agent's language (x topic) sorted sets, whatever waits."""
    generalist = AgentSkills("g", ("en", "fr"), (), 3)
    specialist = AgentSkills("s", ("en",), ("billing", "security"), 3)
    assert generalist.candidate_queues() == [keys.queue("en"), keys.queue("fr")]
    assert specialist.candidate_queues() == [keys.queue("en", "billing"), keys.queue("en", "security"),
                                             keys.queue("en", NO_TOPIC)]
    assert inspect.signature(AgentSkills.candidate_queues).parameters.keys() == {"self"}


def test_claim_script_reads_a_bounded_head_of_each_queue():
    """The claim script reads at most the first few entries of each sorted set: no scan, no full range."""
    script = CLAIM_SCRIPT.upper()
    assert re.findall(r"ZRANGE', KEYS\[I\], 0, (\d+)", script) == ["4"]
    for scan in ("ZSCAN", "HGETALL", "HKEYS", "HVALS", "SMEMBERS", "KEYS', ", "ZRANGEBYSCORE", "-1"):
        assert scan not in script
    assert "ZRANGE" not in inspect.getsource(queue_module.Queue.claim).upper()


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory):
    """A Redis of this module's own, so its command counters see nothing but our claims."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("claimcost"), fsync="no")
    server.start()
    yield server
    server.stop()


async def test_claim_does_the_same_redis_work_for_10_or_3000_waiting_chats(private_redis):
    """Commands run inside one claim (from Redis' own counters) do not grow with the queue."""
    from redis.asyncio import Redis

    r = Redis.from_url(private_redis.url)
    q = Queue(r)

    async def claim_work(waiting: int, lang: str) -> dict[str, int]:
        skills = await online_agent(r, f"a-{lang}", [lang], max_chats=1)
        # Put in line by the queue's own enqueue, as a hello does: the first alone (it loads the
        # script), the rest in one pipeline (3000 take a fraction of a second).
        line = [dict(lang=lang, topic=NO_TOPIC, plan="free", score=float(i), arrived_at=float(i), emergency=False)
                for i in range(waiting)]
        await q.enqueue(f"{lang}-0", **line[0])
        async with r.pipeline(transaction=False) as pipe:
            for i in range(1, waiting):
                q.enqueue_on(pipe, f"{lang}-{i}", **line[i])
            await pipe.execute()
        await r.config_resetstat()
        assert await q.claim(skills, 0.0) == f"{lang}-0"
        stats = await r.info("commandstats")
        return {name: int(s["calls"]) for name, s in stats.items()
                if name.startswith("cmdstat_") and name not in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_script", "cmdstat_info")}

    try:
        small, big = await claim_work(10, "small"), await claim_work(3000, "big")
        assert small == big
        assert small["cmdstat_zrange"] == 1 and small["cmdstat_hget"] <= 2
    finally:
        await r.aclose()


# --- ordering through the hub -------------------------------------------------------------


async def busy_agent(sockets, hub, lang: str):
    """An online agent with room for one chat, already holding one: later chats wait in line."""
    sam, _ = await sockets.agent(hub, f"a-{lang}", [lang], max_chats=1)
    _, first = await sockets.visitor(hub, lang)
    await sam.expect("assigned", chat_id=first["chat_id"])
    return sam, first["chat_id"]


async def test_visionary_who_arrives_after_a_free_visitor_is_assigned_first(hub, rds, lang, sockets):
    """Free waits, a visionary comes later: the agent's freed slot goes to the visionary."""
    sam, current = await busy_agent(sockets, hub, lang)
    free, free_welcome = await sockets.visitor(hub, lang)
    await free.expect("queued", position=1)
    vis, vis_welcome = await sockets.visitor(hub, lang, identity=token("visionary"))
    await vis.expect("queued", position=1)
    await free.expect("queued", position=2)
    await close_chat(sam, current)
    assert (await sam.expect("assigned"))["chat_id"] == vis_welcome["chat_id"]
    await vis.expect("assigned")
    await close_chat(sam, vis_welcome["chat_id"])
    assert (await sam.expect("assigned"))["chat_id"] == free_welcome["chat_id"]


async def test_emergency_topic_jumps_the_line_and_is_flagged_to_the_agent(hub, rds, lang, sockets):
    """topic "emergency" goes ahead of an earlier visionary; the agent sees emergency true."""
    sam, current = await busy_agent(sockets, hub, lang)
    vis, _ = await sockets.visitor(hub, lang, identity=token("visionary"))
    await vis.expect("queued", position=1)
    sos, welcome = await sockets.visitor(hub, lang, topic="emergency", address=fresh_address())
    assert welcome["emergency"] is True and welcome["status"] == "queued"
    await sos.expect("queued", position=1)
    assert (await route(rds, welcome["chat_id"]))["emergency"] is True
    await close_chat(sam, current)
    assigned = await sam.expect("assigned")
    assert assigned["chat_id"] == welcome["chat_id"]
    assert assigned["visitor"]["emergency"] is True and assigned["visitor"]["topic"] == "emergency"


async def test_first_message_starting_with_emergency_jumps_the_line(hub, rds, lang, sockets):
    """A waiting visitor whose first message starts with "EMERGENCY" moves to the head, flagged."""
    sam, current = await busy_agent(sockets, hub, lang)
    vis, _ = await sockets.visitor(hub, lang, identity=token("visionary"))
    await vis.expect("queued", position=1)
    sos, welcome = await sockets.visitor(hub, lang, topic="billing", address=fresh_address())
    assert welcome["emergency"] is False
    await sos.expect("queued", position=2)
    await sos.send(type="message", text="EMERGENCY: nobody in our company receives mail", client_id="m1")
    await sos.expect("queued", position=1)
    await vis.expect("queued", position=2)
    await close_chat(sam, current)
    assigned = await sam.expect("assigned")
    assert assigned["chat_id"] == welcome["chat_id"] and assigned["visitor"]["emergency"] is True


async def test_later_message_starting_with_emergency_changes_nothing(hub, rds, lang, sockets):
    """Only the first message can flag an emergency; a second one saying "Emergency" does not."""
    await busy_agent(sockets, hub, lang)
    ada, welcome = await sockets.visitor(hub, lang, address=fresh_address())
    await ada.send(type="message", text="Hello, a question about invoices", client_id="m1")
    await ada.send(type="message", text="Emergency! please answer", client_id="m2")
    await barrier(ada)
    assert (await route(rds, welcome["chat_id"]))["emergency"] is False


async def test_abuse_guard_refuses_a_second_unverified_emergency_from_the_same_address(hub, rds, lang, sockets):
    """An unverified visitor gets the emergency flag once per guard period per address."""
    await sockets.agent(hub, f"a-{lang}", [lang])
    address = fresh_address()
    _, first = await sockets.visitor(hub, lang, topic="emergency", address=address)
    _, second = await sockets.visitor(hub, lang, topic="emergency", address=address)
    _, elsewhere = await sockets.visitor(hub, lang, topic="emergency", address=fresh_address())
    assert (first["emergency"], second["emergency"], elsewhere["emergency"]) == (True, False, True)
    assert (await route(rds, second["chat_id"]))["emergency"] is False


async def test_abuse_guard_also_covers_the_first_message_route(hub, rds, lang, sockets):
    """After an emergency by topic, the same address cannot escalate a new chat by message."""
    await busy_agent(sockets, hub, lang)
    address = fresh_address()
    _, first = await sockets.visitor(hub, lang, topic="emergency", address=address)
    again, second = await sockets.visitor(hub, lang, address=address)
    await again.send(type="message", text="Emergency: still down", client_id="m1")
    await barrier(again)
    assert first["emergency"] is True
    assert (await route(rds, second["chat_id"]))["emergency"] is False
    assert (await rds.hget(keys.chat(second["chat_id"]), "emergency")) == b"0"


async def test_refused_emergency_waits_in_line_for_any_agent_of_its_language(hub, rds, lang, sockets):
    """A refused "emergency" topic is routed like a chat without topic, not stranded."""
    await sockets.agent(hub, f"a-{lang}", [lang], topics=["billing"])
    address = fresh_address()
    await sockets.visitor(hub, lang, topic="emergency", address=address)
    _, refused = await sockets.visitor(hub, lang, topic="emergency", address=address)
    assert refused["emergency"] is False and refused["status"] == "queued"


async def test_verified_customer_may_flag_emergencies_repeatedly(hub, rds, lang, sockets):
    """The guard only limits unverified visitors: a verified customer is trusted each time."""
    await sockets.agent(hub, f"a-{lang}", [lang])
    address = fresh_address()
    _, first = await sockets.visitor(hub, lang, topic="emergency", address=address, identity=token("plus"))
    _, second = await sockets.visitor(hub, lang, topic="emergency", address=address, identity=token("plus"))
    assert first["emergency"] is True and second["emergency"] is True


async def test_max_wait_deadline_follows_the_plan(hub, rds, lang, sockets):
    """Each waiting chat has a deadline of arrived_at + its plan's max_wait (free 600 s, visionary 1800 s)."""
    await busy_agent(sockets, hub, lang)
    _, free = await sockets.visitor(hub, lang)
    _, vis = await sockets.visitor(hub, lang, identity=token("visionary"))
    for welcome, plan in ((free, FREE), (vis, VISIONARY)):
        arrived = (await route(rds, welcome["chat_id"]))["arrived_at"]
        assert await rds.zscore(keys.TIMERS, f"max_wait|{welcome['chat_id']}") == arrived + plan.max_wait
