"""7. Scale: the relay ceiling with 1 hub process and with 2 (`livechat serve --workers 2`),
each on a single Redis and on a 3-master Redis Cluster (Debian's redis-server 7 for both, on
loopback TCP), side by side in one run; and how many claims a second the waiting line's node
carries.

Unlike scenarios 1-5 nothing is pinned: the hub's workers, the Redis nodes and the load
generator share every core, which is what running more processes than one core means. On a
2-core machine the load generator takes a share of the cores the hub would use, so each
window reports the CPU of every side (hub processes summed, Redis nodes summed, load
generator) for a reader to judge the ratio by.

The traffic is scenario 3's: windowed ping-pong (each chat keeps one message in flight;
whoever receives one answers at once), so the servers alone set the pace.

The waiting line: every claim, enqueue and place in line of the desk goes to the one node
holding the `{q}` slot. Chats are put in line with chat.queue.Queue.enqueue and taken with
Queue.claim (the hub's own calls) by many concurrent callers on one node; the node's Redis
CPU time per claim gives the claims a second it could carry at 100% of one core.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.scenarios.common import Context, Window, ours_pairs
from bench.servers import RedisNodes, ScaleHub
from bench.stats import ratio, samples_from, summarize

VARIANTS = (("single Redis", 1), ("3-master cluster", 3))
WORKERS = (1, 2)


def _window(ctx: Context, hub: ScaleHub, nodes: RedisNodes) -> dict[str, Any]:
    o = ctx.opts
    start_at = time.monotonic() + 0.5
    t0 = start_at + o.warmup
    pids = {f"hub{i}": pid for i, pid in enumerate(hub.worker_pids)}
    pids.update({f"redis{i}": pid for i, pid in enumerate(nodes.pids)})
    pids.update({f"client{i}": pid for i, pid in enumerate(ctx.pool.pids)})
    meter = Window(pids, t0, t0 + o.scale_seconds)
    args = {"window": 1, "start_at": start_at, "warmup": o.warmup, "seconds": o.scale_seconds, "drain": o.drain}
    results = ctx.pool.call("pingpong", [args] * len(ctx.pool), timeout=o.warmup + o.scale_seconds + o.drain + 120)
    cpu = meter.join()
    delivered = sum(r["delivered"] for r in results)
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    group = lambda prefix: round(sum(v for k, v in cpu.items() if k.startswith(prefix)), 1)  # noqa: E731
    return {
        "throughput": round(delivered / o.scale_seconds, 1),
        "delivered": delivered,
        "latency": summarize(samples_from(r["lat"] for r in results)),
        "cpu": cpu,
        "hub_cpu": group("hub"),
        "redis_cpu": group("redis"),
        "client_cpu": group("client"),
        "cores": meter.cores,
        "errors": errors,
    }


def run_one(ctx: Context, label: str, masters: int, workers: int) -> dict[str, Any]:
    o = ctx.opts
    workdir = ctx.scratch / f"scale-{masters}-{workers}"
    with RedisNodes(workdir, masters=masters, fsync=o.fsync) as nodes:
        hub = ScaleHub(workdir, nodes.url, workers, fsync=o.fsync)
        with hub:
            ctx.setup_clients("livechat", hub.port)
            ctx.log(f"scale: {label}, {workers} hub process(es), {o.scale_pairs} pairs")
            setup = ours_pairs(ctx, hub, o.scale_pairs, 1, f"s{masters}{workers}")
            result = _window(ctx, hub, nodes)
            ctx.pool.call("close_all")
    result.update(setup=setup, redis=label, masters=masters, workers=workers)
    return result


async def _claims(url: str, chats: int, callers: int) -> dict[str, Any]:
    """Put `chats` in line, then take them all with `callers` concurrent claimers, each an
    agent with room for every chat; Redis's own CPU time (INFO cpu) per claim."""
    import msgpack

    from chat.queue import AgentSkills, Queue, topic_key
    from chat import keys
    from chat.store import redis_client

    redis = redis_client(url)
    try:
        queue = Queue(redis)
        now = time.time()
        t0 = time.monotonic()
        for start in range(0, chats, 500):
            await asyncio.gather(*(queue.enqueue(f"scale-{i}", lang="en", topic=topic_key("", False), plan="free",
                                                 score=now + i * 1e-6, arrived_at=now, emergency=False)
                                   for i in range(start, min(chats, start + 500))))
        enqueue_s = time.monotonic() - t0
        agents = [AgentSkills(f"claimer{i}", ("en",), (), chats) for i in range(callers)]
        await redis.hset(keys.AGENTS, mapping={a.username: msgpack.packb({"status": "online", "max_chats": chats,
                                                                          "langs": ["en"], "topics": []})
                                               for a in agents})
        before = await redis.info("cpu")
        taken = 0

        async def claimer(agent: AgentSkills) -> None:
            nonlocal taken
            while await queue.claim(agent, time.time()):
                taken += 1

        t0 = time.monotonic()
        await asyncio.gather(*(claimer(a) for a in agents))
        claim_s = time.monotonic() - t0
        after = await redis.info("cpu")
        redis_cpu = sum(float(after[k]) - float(before[k]) for k in ("used_cpu_sys", "used_cpu_user"))
    finally:
        await redis.aclose()
    per_claim_us = redis_cpu / taken * 1e6 if taken else None
    return {
        "chats": chats, "claimed": taken, "callers": callers,
        "enqueue_per_s": round(chats / enqueue_s, 1) if enqueue_s else None,
        "claims_per_s": round(taken / claim_s, 1) if claim_s else None,
        "redis_cpu_us_per_claim": round(per_claim_us, 1) if per_claim_us else None,
        "node_claims_per_s_at_one_core": round(1e6 / per_claim_us) if per_claim_us else None,
    }


def routing_line(ctx: Context) -> dict[str, Any]:
    o = ctx.opts
    with RedisNodes(ctx.scratch / "scale-line", masters=1, fsync=o.fsync) as node:
        ctx.log(f"scale: the waiting line's node, {o.scale_claims:,} claims")
        return asyncio.run(_claims(node.url, o.scale_claims, 32))


def run(ctx: Context) -> dict[str, Any]:
    runs = []
    for label, masters in VARIANTS:
        for workers in WORKERS:
            runs.append(run_one(ctx, label, masters, workers))
    by = {(r["masters"], r["workers"]): r for r in runs}
    out: dict[str, Any] = {"runs": runs, "line": routing_line(ctx)}
    out["two_over_one"] = {label: ratio(by[(m, 2)]["throughput"], by[(m, 1)]["throughput"]) for label, m in VARIANTS}
    out["cluster_over_single"] = {w: ratio(by[(3, w)]["throughput"], by[(1, w)]["throughput"]) for w in WORKERS}
    return out
