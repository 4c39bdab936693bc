"""``python -m bench`` (``make bench``): run the scenarios, print one table, write
bench/results/latest.json and bench/results/latency.svg.

Every server (our hub, the baselines) is a child process pinned with its Redis to the first
CPU; the load generator runs in separate processes pinned to the other CPU(s). Everything
listens on 127.0.0.1 or a unix socket, every size is bounded, and the run stops by itself.
See bench/options.py for the flags and bench/README.md for what each figure means.
"""

from __future__ import annotations

import sys
import time
import traceback
from typing import Any

from bench import options, report, svg
from bench.machine import (CLIENT_CPUS, autogroup_nice, lift_open_files, load_average, machine_info, pin,
                           raise_priority, restore_autogroup)
from bench.servers import cleanup, work_root
from bench.workers import ClientPool


def main(argv: list[str] | None = None) -> int:
    opts = options.parse(argv)
    group_nice = autogroup_nice()
    try:
        return run(opts)
    finally:
        restore_autogroup(group_nice)


def run(opts) -> int:
    # the idle scenario's sockets, each a file in the hub and in the load generator, and headroom
    open_files = lift_open_files(opts.idle_sockets + 10_000 if "idle" in opts.only else 0)
    pin(CLIENT_CPUS)  # the orchestrator stays off the hub's core too
    nice = raise_priority(opts.nice)  # inherited by every server and client process
    machine = machine_info(open_files, nice)
    load_before = load_average()
    from bench.scenarios import ceiling, idle, relay, routing, scale, widget
    from bench.scenarios.common import Context

    scratch = work_root()
    started = time.monotonic()
    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    print(f"livechat bench: {', '.join(opts.only)}{' (quick)' if opts.quick else ''}; {machine.headline()}",
          file=sys.stderr, flush=True)
    with ClientPool(opts.client_procs) as pool:
        ctx = Context(opts, pool, scratch)

        def attempt(name: str, fn, *args) -> Any:
            try:
                return fn(ctx, *args)
            except Exception:  # noqa: BLE001 - one failed scenario must not hide the others
                failures[name] = traceback.format_exc()
                ctx.log(f"{name} failed:\n{failures[name]}")
                return None

        if "widget" in opts.only:
            r = attempt("widget", widget.run)
            if r:
                results["widget"] = r
        if "idle" in opts.only:
            r = attempt("idle", idle.run)
            if r:
                results["idle"] = r
        if "relay" in opts.only:
            r = attempt("relay", relay.run, "always", opts.relay_rate, "relay", opts.relay_newcomers)
            if r:
                results["relay"] = r
        if "durability" in opts.only:
            results["durability"] = {"rate": opts.durability_rate}
            for fsync in ("always", "everysec"):
                r = attempt(f"durability-{fsync}", relay.run, fsync, opts.durability_rate, f"durability-{fsync}")
                if r:
                    results["durability"][fsync] = r
        if "ceiling" in opts.only:
            r = attempt("ceiling", ceiling.run)
            if r:
                results["ceiling"] = r
        if "routing" in opts.only:
            r = attempt("routing", routing.run)
            if r:
                results["routing"] = r
        if "scale" in opts.only:
            r = attempt("scale", scale.run)
            if r:
                results["scale"] = r
    rows = report.build_rows(results)
    table = report.render(rows, machine) + "\n\n" + report.contention_note(results)
    elapsed = time.monotonic() - started
    data = {
        "machine": machine.__dict__,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "options": {k: (str(v) if not isinstance(v, (int, float, str, list, bool)) else v) for k, v in vars(opts).items()},
        "elapsed_s": round(elapsed, 1),
        "scenarios": results,
        "failures": failures,
        "profiles": ctx.profiles,
        "table": rows,
        "table_text": table,
    }
    opts.out.mkdir(parents=True, exist_ok=True)
    report.write_json(opts.out / "latest.json", data)
    svg.write(opts.out / "latency.svg", results, machine.headline())
    print(table)
    print(f"\n{len(rows)} figures in {elapsed:.0f} s; written {opts.out / 'latest.json'} and {opts.out / 'latency.svg'}")
    if ctx.profiles:
        for label, prof in ctx.profiles.items():
            if not prof:
                continue
            print(f"\nprofile {label} ({prof['samples']} samples), top self time:")
            for name, pct in prof["self"][:15]:
                print(f"  {pct:5.1f}%  {name}")
    if failures:
        print(f"\nfailed scenarios: {', '.join(failures)} (tracebacks in latest.json)")
    if opts.keep:
        print(f"scratch kept in {scratch}")
    else:
        cleanup(scratch)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
