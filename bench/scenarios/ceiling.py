"""3. Throughput ceiling: the relay with the rate unbounded but windowed (each chat keeps at
most W messages in flight: whoever receives one answers at once), on our hub, on the bare
baseline (same stack, no app logic, no persistence) and on the python-socketio peer, one
after the other in the same run with the same pairs, codec and client."""

from __future__ import annotations

from typing import Any

from bench.scenarios.common import Context, baseline_pairs, ours_pairs, run_traffic
from bench.servers import BaselineServer, OurHub
from bench.stats import ratio

SERVERS = ("livechat", "bare_relay", "socketio_relay")


def run(ctx: Context) -> dict[str, Any]:
    o = ctx.opts
    out: dict[str, Any] = {}
    for name in SERVERS:
        workdir = ctx.scratch / f"ceiling-{name}"
        server = OurHub(workdir, fsync=o.fsync) if name == "livechat" else BaselineServer(name, workdir)
        with server:
            ctx.setup_clients(name, server.port)
            ctx.log(f"ceiling: {name}, {o.ceiling_agents} x {o.ceiling_chats} pairs, window {o.ceiling_window}")
            if name == "livechat":
                setup = ours_pairs(ctx, server, o.ceiling_agents, o.ceiling_chats, "ceil")
            else:
                setup = baseline_pairs(ctx, o.ceiling_agents, o.ceiling_chats)
            result = run_traffic(ctx, server, "pingpong", o.ceiling_seconds, f"ceiling-{name}", window=o.ceiling_window)
            ctx.pool.call("close_all")
        result["setup"] = setup
        out[name] = result
    ours = out["livechat"]["throughput"]
    out["ours_over_baseline"] = ratio(ours, out["bare_relay"]["throughput"])
    out["ours_over_peer"] = ratio(ours, out["socketio_relay"]["throughput"])
    return out
