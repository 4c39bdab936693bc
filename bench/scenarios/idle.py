"""1. Idle connections: N visitor sockets that said hello and wait, on one hub process.

No agent is online, so every chat is in the "offline" (leave a message) state: a widget
opened and idle. Reported: the hub process's RSS growth per socket (VmRSS before and
after, hub alone; its Redis separately), the time to accept them all (first connect to
last welcome), and the hub's CPU while they sit idle (heartbeats, presence).
"""

from __future__ import annotations

import time
from typing import Any

from bench.machine import CpuMeter, SystemMeter, contention, open_files_limit, rss_kb
from bench.scenarios.common import Context, redis_info_memory
from bench.servers import OurHub, http_get

IDLE_CPU_SECONDS = 5.0
# Past this many sockets the load generator spreads them over several loopback source
# addresses (127.0.0.2, .3, ...): one address has ~28,000 ephemeral ports to one hub port.
SOCKETS_PER_SOURCE = 20_000


def run(ctx: Context) -> dict[str, Any]:
    n = ctx.opts.idle_sockets
    with OurHub(ctx.scratch / "idle", fsync=ctx.opts.fsync) as hub:
        sources = -(-n // SOCKETS_PER_SOURCE) if n > SOCKETS_PER_SOURCE else 1
        ctx.setup_clients("livechat", hub.port, sources=sources)
        limit = open_files_limit()
        if n + 1000 > limit or n // len(ctx.pool) + 1000 > limit:
            ctx.log(f"idle: {n:,} sockets need more than the open-files limit of {limit:,} in the hub (and "
                    f"{n // len(ctx.pool):,} in each of {len(ctx.pool)} client process(es)): expect failures; raise "
                    f"`ulimit -Hn` (the bench lifts the hard limit itself where it may) and use --client-procs")
        # One socket first, so that lazily imported code and first-use caches are in the "before".
        ctx.pool.call_one(0, "open_visitors", specs=[{"lang": "en"}])
        ctx.pool.call("close_all")
        http_get(hub.port, "/healthz")
        time.sleep(1.0)
        before, redis_before, redis_used_before = rss_kb(hub.pid), rss_kb(hub.redis_pid), redis_info_memory(hub.redis_url)
        ctx.log(f"idle: opening {n:,} visitor sockets")
        accept_meter = CpuMeter({"hub": hub.pid, "redis": hub.redis_pid})
        profiler = ctx.profiler(hub, "idle-accept")
        parts = ctx.pool.call("open_visitors", [{"specs": s, "timeout": 300.0} for s in ctx.split([{"lang": "en"}] * n)],
                              timeout=900)
        opened = sum(p["opened"] for p in parts)
        failed = sum(p["failed"] for p in parts)
        accept_s = max(p["t1"] for p in parts) - min(p["t0"] for p in parts)
        accept_cpu = accept_meter.percent()
        ctx.keep_profile(profiler, "idle-accept")
        time.sleep(2.0)  # let the welcome/offline frames and presence writes settle
        meter, system = CpuMeter({"hub": hub.pid, "redis": hub.redis_pid}), SystemMeter()
        time.sleep(IDLE_CPU_SECONDS)
        idle_cpu, cores = meter.percent(), system.percent()
        after, redis_after, redis_used_after = rss_kb(hub.pid), rss_kb(hub.redis_pid), redis_info_memory(hub.redis_url)
        counts = ctx.counts()
        ctx.pool.call("close_all")
    per = lambda a, b: round((a - b) / opened, 2) if opened else None  # noqa: E731
    return {
        "sockets": n,
        "source_addresses": sources,
        "opened": opened,
        "failed": failed,
        "open_at_end": counts["visitors_open"],
        "statuses": counts["statuses"],
        "accept_s": round(accept_s, 2),
        "accept_per_s": round(opened / accept_s, 1) if accept_s else None,
        "accept_cpu": accept_cpu,
        # the hub's CPU time per accepted socket: handshake, hello, the chat's writes, welcome
        "hub_cpu_ms_per_hello": round(accept_cpu.get("hub", 0) / 100 * accept_s * 1000 / opened, 3) if opened else None,
        "accept_waited": accept_meter.waited(),
        "hub_rss_kb_before": before,
        "hub_rss_kb_after": after,
        "hub_kb_per_socket": per(after, before),
        "redis_rss_kb_before": redis_before,
        "redis_rss_kb_after": redis_after,
        "redis_kb_per_socket": per(redis_after, redis_before),
        "redis_used_bytes_per_socket": round((redis_used_after - redis_used_before) / opened, 1) if opened else None,
        "idle_cpu": idle_cpu,
        "cores": cores,
        "waited": meter.waited(),
        "contention": contention(meter.waited(), idle_cpu, cores),
        "errors": counts["errors"],
        "failures": counts["failures"],
    }
