"""What the scenarios share: the run's context, bringing up visitor-agent pairs on each kind
of server, and timing a traffic window with CPU meters (and optionally py-spy) around it."""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis as SyncRedis

from chat import keys
from chat.queue import read_agents

from bench.desk import create_agents, open_sessions, post_login
from bench.machine import CpuMeter, SystemMeter, contention
from bench.profile import Profiler
from bench.servers import HOST, OurHub, _Server
from bench.stats import samples_from, summarize
from bench.workers import ClientPool


@dataclass
class Context:
    opts: argparse.Namespace
    pool: ClientPool
    scratch: Path
    profiles: dict[str, Any] = field(default_factory=dict)

    def profiler(self, server: _Server, label: str) -> Profiler | None:
        """A started py-spy recording of the server when --profile was given."""
        if not self.opts.profile:
            return None
        profiler = Profiler(server.pid, self.opts.out / f"profile-{label}.txt")
        return profiler if profiler.start() else None

    def keep_profile(self, profiler: Profiler | None, label: str) -> None:
        if profiler:
            profiler.stop()
            self.profiles[label] = {**profiler.summary(), "file": str(profiler.out)}

    def log(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def split(self, items: list[Any]) -> list[list[Any]]:
        """Deal items round-robin to the client processes."""
        n = len(self.pool)
        return [items[i::n] for i in range(n)]

    def setup_clients(self, dialect: str, port: int, sources: int = 1) -> None:
        """Point the load generator at a server; sources > 1 spreads its visitor sockets over
        that many loopback source addresses."""
        extra = {"sources": sources} if sources > 1 else {}
        self.pool.call("setup", {"dialect": dialect, "host": HOST, "port": port, "codec": self.opts.codec,
                                 "concurrency": self.opts.connect_concurrency, **extra})

    def counts(self) -> dict[str, Any]:
        """The client processes' counters, summed."""
        total: dict[str, Any] = {}
        for part in self.pool.call("counts"):
            for key, value in part.items():
                if isinstance(value, dict):
                    bucket = total.setdefault(key, {})
                    for k, v in value.items():
                        bucket[k] = bucket.get(k, 0) + v
                else:
                    total[key] = total.get(key, 0) + value
        return total

    def wait_counts(self, done, what: str, timeout: float = 120.0, interval: float = 0.25) -> dict[str, Any]:
        """Poll the client processes until done(counts) holds (a condition, not a fixed sleep)."""
        deadline = time.monotonic() + timeout
        while True:
            counts = self.counts()
            if done(counts):
                return counts
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}: {counts}")
            time.sleep(interval)


def wait_agents_online(redis_url: str, usernames: list[str], timeout: float = 60.0) -> None:
    async def online() -> int:
        from chat.store import redis_client  # a cluster URL too (the scale scenario)

        redis = redis_client(redis_url)
        try:
            agents = await read_agents(redis)
        finally:
            await redis.aclose()
        return sum(1 for u in usernames if agents.get(u, {}).get("status") == "online")

    deadline = time.monotonic() + timeout
    while asyncio.run(online()) < len(usernames):
        if time.monotonic() > deadline:
            raise TimeoutError("agents did not all come online")
        time.sleep(0.1)


def ours_agents(ctx: Context, hub: OurHub, count: int, max_chats: int, prefix: str, only: list[int] | None = None) -> dict[str, Any]:
    """Accounts, sessions (one real login), agent sockets online. Returns setup facts."""
    names = [f"{prefix}{i:04d}" for i in range(count)]
    asyncio.run(create_agents(hub.redis_url, names, max_chats))
    cookie, login_s = post_login(hub.port, names[0])
    cookies = asyncio.run(open_sessions(hub.redis_url, names[1:]))
    cookies[names[0]] = cookie
    specs = [{"cookie": cookies[n]} for n in names]
    if only is not None:
        ctx.pool.call("open_agents", [{"specs": specs}], only=only)
    else:
        ctx.pool.call("open_agents", [{"specs": s} for s in ctx.split(specs)])
    wait_agents_online(hub.redis_url, names)
    return {"agents": count, "max_chats": max_chats, "login_post_s": round(login_s, 3)}


def ours_pairs(ctx: Context, hub: OurHub, agents: int, chats: int, prefix: str) -> dict[str, Any]:
    """agents x chats visitor-agent pairs on our hub, every visitor assigned."""
    t0 = time.monotonic()
    facts = ours_agents(ctx, hub, agents, chats, prefix)
    pairs = agents * chats
    ctx.pool.call("open_visitors", [{"specs": s} for s in ctx.split([{"lang": "en"}] * pairs)])
    counts = ctx.wait_counts(lambda c: c["visitors_assigned"] >= pairs and c["agent_chats"] >= pairs,
                             f"{pairs} chats assigned", timeout=180)
    facts.update(pairs=pairs, setup_s=round(time.monotonic() - t0, 1), statuses=counts["statuses"])
    return facts


def baseline_pairs(ctx: Context, agents: int, chats: int) -> dict[str, Any]:
    """The same topology on a baseline: agent j holds rooms j*chats .. j*chats+chats-1."""
    t0 = time.monotonic()
    rooms = [f"r{i}" for i in range(agents * chats)]
    agent_specs = [{"rooms": rooms[j * chats : (j + 1) * chats]} for j in range(agents)]
    ctx.pool.call("open_agents", [{"specs": s} for s in ctx.split(agent_specs)])
    ctx.pool.call("open_visitors", [{"specs": s} for s in ctx.split([{"room": r} for r in rooms])])
    time.sleep(0.5)  # joins are fire-and-forget in the baselines' protocol; let them land
    return {"agents": agents, "max_chats": chats, "pairs": len(rooms), "setup_s": round(time.monotonic() - t0, 1)}


class Window:
    """CPU meters of named processes read exactly at the start and the end of the measured
    window, from a thread, while the parent is blocked waiting for the client processes."""

    def __init__(self, pids: dict[str, int], t_start: float, t_end: float):
        self.meter = CpuMeter(pids)
        self.system = SystemMeter()
        self.cpu: dict[str, float] = {}
        self.waited: dict[str, float] = {}
        self.cores: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, args=(t_start, t_end), daemon=True)
        self._thread.start()

    def _run(self, t_start: float, t_end: float) -> None:
        time.sleep(max(0.0, t_start - time.monotonic()))
        self.meter.start()
        self.system.start()
        time.sleep(max(0.0, t_end - time.monotonic()))
        self.cpu = self.meter.percent()
        self.waited = self.meter.waited()
        self.cores = self.system.percent()

    def join(self) -> dict[str, float]:
        self._thread.join()
        return self.cpu


def run_traffic(ctx: Context, server: _Server, mode: str, seconds: float, label: str, **kw: Any) -> dict[str, Any]:
    """One measured window of relay (fixed rate) or pingpong (windowed, unbounded) traffic."""
    opts = ctx.opts
    start_at = time.monotonic() + 0.5
    t_rec0 = start_at + opts.warmup
    t_rec1 = t_rec0 + seconds
    pids = {"server": server.pid, "redis": server.redis_pid}
    pids.update({f"client{i}": pid for i, pid in enumerate(ctx.pool.pids)})
    window = Window(pids, t_rec0, t_rec1)
    profiler = None
    if opts.profile:
        profiler = Profiler(server.pid, ctx.opts.out / f"profile-{label}.txt")
        threading.Timer(max(0.0, t_rec0 - time.monotonic()), profiler.start).start()
        threading.Timer(max(0.0, t_rec1 - time.monotonic()), profiler.stop).start()
    per_worker: list[dict[str, Any]] = []
    if mode == "relay":
        counts = [c["visitors_assigned"] + c["agent_chats"] for c in ctx.pool.call("counts")]
        total = max(sum(counts), 1)
        for i, n in enumerate(counts):
            per_worker.append({"rate": kw["rate"] * n / total, "start_at": start_at, "warmup": opts.warmup,
                               "seconds": seconds, "drain": opts.drain,
                               "newcomers": kw.get("newcomers", 0.0) if i == 0 else 0.0})
    else:
        per_worker = [{"window": kw["window"], "start_at": start_at, "warmup": opts.warmup, "seconds": seconds,
                       "drain": opts.drain}] * len(ctx.pool)
    results = ctx.pool.call(mode, per_worker, timeout=opts.warmup + seconds + opts.drain + 120)
    window.join()
    lat = summarize(samples_from(r["lat"] for r in results))
    sent = sum(r["sent"] for r in results)
    delivered = sum(r["delivered"] for r in results)
    errors: dict[str, int] = {}
    closes: dict[str, int] = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
        for k, v in r["closes"].items():
            closes[str(k)] = closes.get(str(k), 0) + v
    out = {
        "seconds": seconds,
        "sent": sent,
        "delivered": delivered,
        "throughput": round(delivered / seconds, 1),
        "latency": lat,
        "cpu": window.cpu,
        "cores": window.cores,
        "waited": window.waited,
        "contention": contention(window.waited, window.cpu, window.cores),
        "errors": errors,
        "closes": closes,
    }
    if any("welcome_lat" in r for r in results):
        statuses: dict[str, int] = {}
        for r in results:
            for k, v in r.get("newcomer_statuses", {}).items():
                statuses[k] = statuses.get(k, 0) + v
        out["newcomers"] = {
            "rate": kw.get("newcomers"),
            "count": sum(r.get("newcomers", 0) for r in results),
            "welcome": summarize(samples_from(r["welcome_lat"] for r in results if "welcome_lat" in r)),
            "queued": summarize(samples_from(r["queued_lat"] for r in results if "queued_lat" in r)),
            "statuses": statuses,
        }
    if mode == "relay":
        out["rate"] = kw["rate"]
        out["delivered_ratio"] = round(delivered / sent, 4) if sent else None
        out["send_rate"] = round(sent / seconds, 1)
    else:
        out["window"] = kw["window"]
    if profiler:
        profiler.stop()
        ctx.profiles[label] = profiler.summary()
        ctx.profiles[label]["file"] = str(profiler.out)
    return out


def redis_info_memory(url: str) -> int:
    client = SyncRedis.from_url(url)
    try:
        return int(client.info("memory").get("used_memory", 0))
    finally:
        client.close()


def queue_length(url: str) -> int:
    client = SyncRedis.from_url(url)
    try:
        return int(client.zcard(keys.QUEUE_ALL))
    finally:
        client.close()


def command_stats(url: str) -> dict[str, tuple[int, int]]:
    """Redis's calls and microseconds per command so far (INFO commandstats; commands run by
    scripts count too), to report what a scenario's step costs Redis."""
    client = SyncRedis.from_url(url)
    try:
        return {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
                for name, v in client.info("commandstats").items()}
    finally:
        client.close()


def per_step(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], steps: int) -> dict[str, Any]:
    """Calls and microseconds of Redis per step between two command_stats, the commands that
    ran at least once every ten steps, the costliest first."""
    rows = {}
    for name, (calls, usec) in after.items():
        calls0, usec0 = before.get(name, (0, 0))
        if steps and calls - calls0 >= steps / 10:
            rows[name] = {"calls": round((calls - calls0) / steps, 1), "us": round((usec - usec0) / steps, 1)}
    return dict(sorted(rows.items(), key=lambda kv: -kv[1]["us"]))
