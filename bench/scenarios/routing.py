"""4. Routing: with Q visitors waiting and every agent at capacity, an agent closes a chat
(frees a slot); timed from the ``close`` frame's send to the ``assigned`` frame for the next
waiting chat on that agent's socket, one slot at a time.

At every Q the same number of waiting visitors are real sockets (--routing-sockets, default
100), so that the hub's per-socket work (places in line) is the same at every depth and the
ratio isolates the cost of the depth itself; the other Q - 100 are written to Redis first
(bench.desk.enqueue_direct: the chat hash, the route and the queue entries, as a hello
makes them), so they are the oldest in line and the ones assigned. Each freed slot is
followed by one new visitor (a socket), so that the line stays Q long. A fresh hub and
Redis per Q. (--routing-sockets 10000 shows the cost of 10,000 waiting sockets instead.)
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.desk import enqueue_direct
from bench.machine import CpuMeter, SystemMeter, contention
from bench.scenarios.common import Context, command_stats, ours_agents, per_step, queue_length
from bench.servers import OurHub
from bench.stats import ratio, samples_from, summarize


def run_one(ctx: Context, q: int) -> dict[str, Any]:
    o = ctx.opts
    capacity = o.routing_agents * o.routing_capacity
    sockets = min(q, o.routing_sockets)
    direct = q - sockets
    with OurHub(ctx.scratch / f"routing-{q}", fsync=o.fsync) as hub:
        ctx.setup_clients("livechat", hub.port)
        t0 = time.monotonic()
        # Agents and the visitors they hold live in client process 0, which times the slots.
        ours_agents(ctx, hub, o.routing_agents, o.routing_capacity, "route", only=[0])
        ctx.pool.call_one(0, "open_visitors", specs=[{"lang": "en"}] * capacity)
        ctx.wait_counts(lambda c: c["agent_chats"] >= capacity, "agents at capacity")
        direct_s = asyncio.run(enqueue_direct(hub.redis_url, direct)) if direct else 0.0
        ctx.log(f"routing Q={q:,}: {direct:,} waiting chats written to Redis in {direct_s:.1f} s, opening {sockets:,} sockets")
        ctx.pool.call("open_visitors", [{"specs": s, "timeout": 300.0} for s in ctx.split([{"lang": "en"}] * sockets)],
                      timeout=900)
        counts = ctx.wait_counts(lambda c: c["statuses"].get("queued", 0) >= sockets, f"{sockets} visitors queued",
                                 timeout=300)
        waiting = queue_length(hub.redis_url)
        setup_s = time.monotonic() - t0
        time.sleep(1.0)
        meter, system = CpuMeter({"hub": hub.pid, "redis": hub.redis_pid}), SystemMeter()
        stats_before = command_stats(hub.redis_url)
        t_loop = time.monotonic()
        profiler = ctx.profiler(hub, f"routing-{q}")
        result = ctx.pool.call_one(0, "routing", samples=o.routing_samples, topup=True, gap=o.routing_gap,
                                   timeout=o.routing_samples * 35 + 60)
        loop_s = time.monotonic() - t_loop
        ctx.keep_profile(profiler, f"routing-{q}")
        cpu, cores = meter.percent(), system.percent()
        stats_after = command_stats(hub.redis_url)
        ctx.pool.call("close_all")
    lat = summarize(samples_from([result["lat"]]))
    done = lat["count"]
    return {
        "queue": q,
        "waiting_at_start": waiting,
        "sockets": sockets,
        "direct": direct,
        "direct_enqueue_s": round(direct_s, 1),
        "setup_s": round(setup_s, 1),
        "latency": lat,
        "missed": result["missed"],
        "cpu": cpu,
        "cores": cores,
        "waited": meter.waited(),
        "contention": contention(meter.waited(), cpu, cores),
        # the hub's CPU time per freed slot, top-up hello and position updates included
        "hub_cpu_ms_per_slot": round(cpu["hub"] / 100 * loop_s * 1000 / done, 2) if done else None,
        "errors": result["errors"],
        "statuses": counts["statuses"],
        # what each freed slot (with its top-up hello) costs Redis, command by command
        "redis_per_slot": per_step(stats_before, stats_after, done),
    }


def run(ctx: Context) -> dict[str, Any]:
    runs = [run_one(ctx, q) for q in ctx.opts.routing_queues]
    lo, hi = runs[0], runs[-1]
    return {
        "runs": runs,
        "ratio_label": f"{hi['queue']:,}/{lo['queue']:,}",
        "p50_ratio": ratio(hi["latency"]["p50_ms"], lo["latency"]["p50_ms"]),
        "p99_ratio": ratio(hi["latency"]["p99_ms"], lo["latency"]["p99_ms"]),
        "cpu_ratio": ratio(hi["hub_cpu_ms_per_slot"], lo["hub_cpu_ms_per_slot"]),
    }
