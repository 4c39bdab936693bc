"""3. Throughput ceiling: the relay with the rate unbounded but windowed (each chat keeps at
most W messages in flight: whoever receives one answers at once), on our hub, on the bare
baseline (same stack, no app logic, no persistence) and on the python-socketio peer, with the
same pairs, codec and client.

On a shared machine one pair of windows can land on a busy and a quiet moment: a ratio from
one pair moved between 0.74 and 1.15 over a day. So the pair (ours, bare baseline) runs
--ceiling-rounds times, alternating, each with a fresh server, and the ratio reported is the
median of the rounds' ratios, with its spread (lowest and highest); the peer runs once."""

from __future__ import annotations

import statistics
from typing import Any

from bench.scenarios.common import Context, baseline_pairs, ours_pairs, run_traffic
from bench.servers import BaselineServer, OurHub
from bench.stats import ratio

SERVERS = ("livechat", "bare_relay", "socketio_relay")


def run_one(ctx: Context, name: str, label: str) -> dict[str, Any]:
    o = ctx.opts
    workdir = ctx.scratch / label
    server = OurHub(workdir, fsync=o.fsync) if name == "livechat" else BaselineServer(name, workdir)
    with server:
        ctx.setup_clients(name, server.port)
        ctx.log(f"ceiling: {label}, {o.ceiling_agents} x {o.ceiling_chats} pairs, window {o.ceiling_window}")
        if name == "livechat":
            setup = ours_pairs(ctx, server, o.ceiling_agents, o.ceiling_chats, "ceil")
        else:
            setup = baseline_pairs(ctx, o.ceiling_agents, o.ceiling_chats)
        result = run_traffic(ctx, server, "pingpong", o.ceiling_seconds, label, window=o.ceiling_window)
        ctx.pool.call("close_all")
    result["setup"] = setup
    return result


def run(ctx: Context) -> dict[str, Any]:
    rounds = max(1, ctx.opts.ceiling_rounds)
    pairs = []
    for i in range(rounds):
        ours = run_one(ctx, "livechat", f"ceiling-livechat-{i + 1}")
        bare = run_one(ctx, "bare_relay", f"ceiling-bare_relay-{i + 1}")
        pairs.append({"livechat": ours, "bare_relay": bare, "ratio": ratio(ours["throughput"], bare["throughput"])})
    peer = run_one(ctx, "socketio_relay", "ceiling-socketio_relay")
    ratios = [p["ratio"] for p in pairs if p["ratio"] is not None]
    # The round whose ratio is the median stands for ours and the baseline in the table.
    middle = sorted(pairs, key=lambda p: p["ratio"] or 0)[(len(pairs) - 1) // 2]
    out: dict[str, Any] = {"livechat": middle["livechat"], "bare_relay": middle["bare_relay"], "socketio_relay": peer,
                           "rounds": [{"livechat": p["livechat"]["throughput"], "bare_relay": p["bare_relay"]["throughput"],
                                       "ratio": p["ratio"]} for p in pairs]}
    out["ours_over_baseline"] = round(statistics.median(ratios), 2) if ratios else None
    out["ratio_spread"] = [min(ratios), max(ratios)] if ratios else None
    out["ours_over_peer"] = ratio(statistics.median(p["livechat"]["throughput"] for p in pairs), peer["throughput"])
    return out
