"""`livechat serve --workers 2`: two full hub processes on one port (SO_REUSEPORT).

Which worker holds a socket is read from the outside: every request to /metrics is a new
connection, answered by one worker, which names itself (`livechat_process_info{pid}`) and
counts its own sockets (`livechat_connections`)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import urllib.request

import pytest

from tests.support.clients import agent, visitor
from tests.support.servers import HubProcess, hub_env
from tests.support.waiting import eventually, wait_until


def workers_of(pid: int) -> list[int]:
    """The worker processes of a `serve --workers` parent (its children; REDIS_URL is set,
    so no embedded Redis among them)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def scrape(hub: HubProcess) -> tuple[int, dict[str, int]]:
    """One /metrics request: the pid of the worker that answered and its sockets by kind."""
    with urllib.request.urlopen(hub.base_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    pid = int(re.search(r'^livechat_process_info\{pid="(\d+)"\} 1$', text, re.M).group(1))
    return pid, {kind: int(n) for kind, n in re.findall(r'^livechat_connections\{kind="(\w+)"\} (\d+)$', text, re.M)}


async def counts_by_worker(hub: HubProcess, kind: str, total: int) -> dict[int, int]:
    """Sockets of one kind on each worker, scraped until both workers answered and their
    counts add up to `total`."""
    seen: dict[int, int] = {}

    async def settled() -> bool:
        pid, counts = await asyncio.to_thread(scrape, hub)
        seen[pid] = counts.get(kind, 0)
        return len(seen) == 2 and sum(seen.values()) == total

    await eventually(settled, timeout=20, message=f"both workers' {kind} counts adding up to {total}")
    return dict(seen)


@pytest.fixture
def workers_hub(redis_url, tmp_path, test_config_path):
    """A fresh `livechat serve --workers 2` on the session's Redis."""
    process = HubProcess(hub_env(redis_url, tmp_path, test_config_path), tmp_path, extra_args=("--workers", "2"))
    process.start()
    answered: set[int] = set()

    def both_serve() -> bool:  # /healthz answered by one; both listen once each has answered
        answered.add(scrape(process)[0])
        return len(answered) == 2

    wait_until(both_serve, 30, message="both workers answering")
    yield process
    process.terminate(30)


async def test_connections_reach_both_workers(workers_hub, lang):
    """Twenty visitor sockets on one port are spread over both worker processes."""
    clients = [await visitor(workers_hub, lang) for _ in range(20)]
    counts = await counts_by_worker(workers_hub, "visitor", 20)
    assert sorted(counts) == sorted(workers_of(workers_hub.process.pid))
    assert all(counts.values()), counts
    for client, _ in clients:
        await client.close()


async def test_visitor_and_agent_on_different_workers_chat_both_ways(workers_hub, rds, lang):
    """A visitor on one worker and its agent on the other are paired and chat both ways."""
    sam, _ = await agent(workers_hub, rds, f"w-{lang}", [lang], max_chats=30)
    agent_worker = next(pid for pid, n in (await counts_by_worker(workers_hub, "agent", 1)).items() if n)
    opened: list = []
    while True:  # visitors until one lands on the other worker (each has one chance in two)
        opened.append(await visitor(workers_hub, lang))
        counts = await counts_by_worker(workers_hub, "visitor", len(opened))
        if sum(n for pid, n in counts.items() if pid != agent_worker) == 1:
            ada, welcome = opened[-1]
            break
    chat_id = welcome["chat_id"]
    await sam.expect("assigned", chat_id=chat_id)
    await ada.expect("assigned")
    await ada.send(type="message", text="from the other worker", client_id="v1")
    assert (await sam.expect("message", chat_id=chat_id))["text"] == "from the other worker"
    await sam.send(type="message", chat_id=chat_id, text="from the agent's worker", client_id="a1")
    assert (await ada.expect("message", seq=2))["text"] == "from the agent's worker"


async def test_a_killed_worker_is_replaced(workers_hub):
    """A worker killed with SIGKILL is replaced by a new one that serves on the same port."""
    parent = workers_hub.process.pid
    first, second = workers_of(parent)
    os.kill(first, signal.SIGKILL)
    replaced = wait_until(lambda: [p for p in workers_of(parent) if p not in (first, second)], 20,
                          message="a new worker")
    assert set(workers_of(parent)) == {second, replaced[0]}

    async def answered_by_new() -> bool:
        return (await asyncio.to_thread(scrape, workers_hub))[0] == replaced[0]

    await eventually(answered_by_new, timeout=20, message="the new worker answering")
    assert workers_hub.process.poll() is None


async def test_sigterm_drains_every_worker_and_leaves_no_process(workers_hub, lang):
    """SIGTERM to `serve --workers 2` closes the sockets of both workers with 1012, ends every
    worker, and the parent exits 0."""
    clients = [await visitor(workers_hub, lang) for _ in range(12)]
    counts = await counts_by_worker(workers_hub, "visitor", 12)
    assert all(counts.values()), counts
    parent = workers_hub.process.pid
    workers = workers_of(parent)
    workers_hub.process.send_signal(signal.SIGTERM)
    codes = await asyncio.gather(*(client.closed_code(timeout=30) for client, _ in clients))
    assert set(codes) == {1012}
    assert await asyncio.to_thread(workers_hub.process.wait, 30) == 0
    assert [pid for pid in workers if alive(pid)] == []
