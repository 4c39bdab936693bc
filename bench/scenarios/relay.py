"""2. Relay, and 5. its durability cost: visitor-agent pairs exchanging messages at a fixed
total rate in both directions, end-to-end latency from the sender's send to the receiver's
receipt, delivered/sent, the hub's CPU. Scenario 2 runs at the target rate with AOF
"always" (the hub's default); scenario 5 runs "always" and "everysec" side by side at a rate
the hub sustains (--durability-rate), so that the difference is the fsync, not overload.
Scenario 2 also times new visitors arriving during the window (--relay-newcomers a second,
every agent busy, so each waits): hello to welcome, and welcome to its first place in line."""

from __future__ import annotations

from typing import Any

from bench.scenarios.common import Context, ours_pairs, run_traffic
from bench.servers import OurHub


def run(ctx: Context, fsync: str, rate: float, label: str, newcomers: float = 0.0) -> dict[str, Any]:
    o = ctx.opts
    with OurHub(ctx.scratch / label, fsync=fsync) as hub:
        ctx.setup_clients("livechat", hub.port)
        ctx.log(f"{label}: {o.relay_agents} agents x {o.relay_chats} chats, AOF {fsync}")
        setup = ours_pairs(ctx, hub, o.relay_agents, o.relay_chats, "relay")
        ctx.log(f"{label}: {rate:,.0f} msg/s for {o.relay_seconds:.0f} s")
        result = run_traffic(ctx, hub, "relay", o.relay_seconds, label, rate=rate, newcomers=newcomers)
        ctx.pool.call("close_all")
    result.update(fsync=fsync, setup=setup)
    return result
