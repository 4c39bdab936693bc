"""Command-line flags of ``python -m bench`` (``make bench``); every flag can also be set by
an environment variable BENCH_<FLAG> (e.g. BENCH_IDLE_SOCKETS=20000). ``--quick`` swaps
in small sizes for a smoke run of about a minute."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

SCENARIOS = ("idle", "relay", "ceiling", "routing", "durability", "widget", "scale")

# flag: (full default, quick default, type, help)
SIZES: dict[str, tuple[object, object, type, str]] = {
    "idle_sockets": (10_000, 1_000, int, "1. idle visitor sockets to open"),
    "relay_agents": (100, 20, int, "2/5. agents in the relay"),
    "relay_chats": (10, 5, int, "2/5. chats each agent holds (its max_chats)"),
    "relay_rate": (2_000, 500, float, "2/5. total messages per second, both directions"),
    "relay_seconds": (20.0, 3.0, float, "2/5. measured seconds"),
    "relay_newcomers": (10.0, 5.0, float, "2. new visitors a second arriving during the relay window, timed hello -> welcome "
                        "-> first place in line (0 = none)"),
    "durability_rate": (500.0, 250.0, float, "5. total msg/s of the always-vs-everysec comparison: a rate the hub sustains, "
                       "so that it measures fsync, not overload"),
    "ceiling_agents": (150, 50, int, "3. agents in the throughput run (150 x 1 chat: 150 messages in flight, enough "
                      "to saturate one core, with per-socket rates under the hub's flood limits up to ~3,000 msg/s)"),
    "ceiling_chats": (1, 1, int, "3. chats per agent in the throughput run"),
    "ceiling_window": (1, 1, int, "3. messages each chat may have in flight"),
    "ceiling_seconds": (10.0, 3.0, float, "3. measured seconds per server and round"),
    "ceiling_rounds": (3, 1, int, "3. rounds of the pair (ours, bare baseline), alternating: the ratio is their median"),
    "routing_queues": ("100,10000,100000", "100,10000", str, "4. waiting visitors, comma-separated"),
    "routing_sockets": (100, 100, int, "4. waiting visitors that are real sockets at every Q; the rest (Q minus this) are written to Redis"),
    "routing_samples": (200, 30, int, "4. freed slots timed per queue depth"),
    "routing_agents": (5, 5, int, "4. agents (all at capacity) freeing slots"),
    "routing_capacity": (4, 4, int, "4. max_chats of each routing agent"),
    "routing_gap": (0.05, 0.05, float, "4. pause between two freed slots, seconds"),
    "scale_pairs": (150, 50, int, "7. visitor-agent pairs of each scale window (one message in flight each)"),
    "scale_seconds": (10.0, 3.0, float, "7. measured seconds of each scale window (1 or 2 hub processes x single Redis or "
                      "3-master cluster)"),
    "scale_claims": (20_000, 3_000, int, "7. chats put in line and claimed on the waiting line's node"),
    "warmup": (2.0, 0.5, float, "seconds of traffic before measuring"),
    "drain": (2.0, 1.0, float, "seconds to wait for in-flight messages after a window"),
    "client_procs": (1, 1, int, "load-generator processes (all on the client CPU)"),
    "connect_concurrency": (200, 200, int, "socket handshakes in flight per client process"),
}


def _env(name: str, default: object, kind: type) -> object:
    raw = os.environ.get("BENCH_" + name.upper())
    return kind(raw) if raw not in (None, "") else default


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="livechat benchmarks: idle sockets, relay latency, throughput against a bare baseline and "
                    "python-socketio, routing, durability cost, widget size, scale (hub processes, Redis Cluster). Prints one table; writes "
                    "bench/results/latest.json and bench/results/latency.svg.",
    )
    parser.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK", "") not in ("", "0"),
                        help="small sizes: a smoke run of about a minute")
    parser.add_argument("--only", default=os.environ.get("BENCH_ONLY", ",".join(SCENARIOS)),
                        help=f"comma-separated scenarios to run ({', '.join(SCENARIOS)})")
    parser.add_argument("--codec", choices=("msgpack", "json"), default=os.environ.get("BENCH_CODEC", "msgpack"),
                        help="our hub's and the bare baseline's wire coding (msgpack = the livechat.msgpack subprotocol)")
    parser.add_argument("--fsync", choices=("always", "everysec"), default=os.environ.get("BENCH_FSYNC", "always"),
                        help="Redis AOF fsync policy for our hub in idle, ceiling and routing (the hub's default is "
                             "always; relay runs always, durability adds everysec)")
    parser.add_argument("--profile", action="store_true", default=os.environ.get("BENCH_PROFILE", "") not in ("", "0"),
                        help="sample the hub with py-spy (pip install py-spy; needs ptrace rights) during the accept, relay, "
                             "throughput and routing windows; folded stacks go to OUT/profile-*.txt, top functions "
                             "to latest.json and the output")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("BENCH_OUT", Path(__file__).parent / "results")),
                        help="where latest.json and latency.svg go")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (server logs, Redis files)")
    parser.add_argument("--nice", type=int, default=int(os.environ.get("BENCH_NICE", "-20")),
                        help="nice value for the bench and everything it starts, so that other programs on a shared "
                             "machine disturb the figures less (needs root or CAP_SYS_NICE; default -20; 0 = leave as is)")
    for name, (full, _quick, kind, text) in SIZES.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=f"{text} (default {full})")
    args = parser.parse_args(argv)
    for name, (full, quick, kind, _text) in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, _env(name, quick if args.quick else full, kind))
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    args.routing_queues = [int(q) for q in str(args.routing_queues).split(",") if q.strip()]
    return args
