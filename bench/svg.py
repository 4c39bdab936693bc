"""A hand-written SVG of the latency percentiles of a run (no plotting dependency): one row per
measured series, p50 / p95 / p99 / max on a logarithmic millisecond axis, with the target
(where there is one) as a red tick."""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

MARKS = (("p50_ms", "p50", "#1f77b4"), ("p95_ms", "p95", "#2ca02c"), ("p99_ms", "p99", "#ff7f0e"), ("max_ms", "max", "#7f7f7f"))


def series(s: dict[str, Any]) -> list[tuple[str, dict[str, float], float | None]]:
    """(label, latency summary, target ms) for every latency measured in the run."""
    out = []
    if s.get("relay"):
        r = s["relay"]
        out.append((f"relay {r['rate']:,.0f} msg/s, AOF {r['fsync']}", r["latency"], 20.0))
    for fsync in ("always", "everysec"):
        r = s.get("durability", {}).get(fsync)
        if r:
            out.append((f"relay {r['rate']:,.0f} msg/s, AOF {fsync}", r["latency"], None))
    c = s.get("ceiling", {})
    for key, label in (("livechat", "ceiling: livechat"), ("bare_relay", "ceiling: bare baseline"),
                       ("socketio_relay", "ceiling: python-socketio")):
        if key in c:
            out.append((f"{label} ({c[key]['throughput']:,.0f} msg/s)", c[key]["latency"], None))
    for r in s.get("routing", {}).get("runs", []):
        out.append((f"routing: freed slot -> assigned, Q={r['queue']:,}", r["latency"], 5.0))
    return [(label, lat, target) for label, lat, target in out if lat.get("count")]


def render(s: dict[str, Any], headline: str) -> str:
    rows = series(s)
    left, right, top, row_h = 330, 30, 80, 34
    width = 1000
    plot_w = width - left - right
    height = top + row_h * max(len(rows), 1) + 60
    values = [lat[k] for _, lat, _ in rows for k, _, _ in MARKS if lat.get(k) and lat[k] > 0]
    lo = 10 ** math.floor(math.log10(min(values))) if values else 0.1
    hi = 10 ** math.ceil(math.log10(max(values))) if values else 100
    if hi <= lo:
        hi = lo * 10
    x = lambda v: left + plot_w * (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))  # noqa: E731
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="system-ui, sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="20" y="20" font-size="15" font-weight="bold">livechat latency percentiles (ms, log scale)</text>',
    ]
    cut = headline.find(" | hub")
    for i, part in enumerate([headline[:cut], headline[cut + 3 :]] if cut > 0 else [headline]):
        parts.append(f'<text x="20" y="{38 + 15 * i}" fill="#555">{escape(part)}</text>')
    decade = lo
    while decade <= hi * 1.0001:
        for m in (1, 2, 5):
            v = decade * m
            if v > hi * 1.0001:
                break
            gx = x(v)
            strong = m == 1
            parts.append(f'<line x1="{gx:.1f}" y1="{top - 8}" x2="{gx:.1f}" y2="{top + row_h * len(rows)}" '
                         f'stroke="{"#ccc" if strong else "#eee"}"/>')
            label = f"{v:g}"
            parts.append(f'<text x="{gx:.1f}" y="{top + row_h * len(rows) + 16}" text-anchor="middle" fill="#555">{label}</text>')
        decade *= 10
    for i, (label, lat, target) in enumerate(rows):
        cy = top + row_h * i + row_h / 2
        parts.append(f'<text x="{left - 10}" y="{cy + 4:.1f}" text-anchor="end">{escape(label)}</text>')
        xs = [x(lat[k]) for k, _, _ in MARKS if lat.get(k)]
        parts.append(f'<line x1="{min(xs):.1f}" y1="{cy:.1f}" x2="{max(xs):.1f}" y2="{cy:.1f}" stroke="#999" stroke-width="2"/>')
        if target:
            tx = x(target)
            parts.append(f'<line x1="{tx:.1f}" y1="{cy - 11:.1f}" x2="{tx:.1f}" y2="{cy + 11:.1f}" stroke="#d62728" '
                         f'stroke-width="2"><title>target {target:g} ms</title></line>')
        for key, name, color in MARKS:
            v = lat.get(key)
            if v:
                parts.append(f'<circle cx="{x(v):.1f}" cy="{cy:.1f}" r="5" fill="{color}"><title>{name} {v:.2f} ms</title></circle>')
    ly = top + row_h * len(rows) + 38
    lx = left
    for _key, name, color in MARKS:
        parts.append(f'<circle cx="{lx}" cy="{ly}" r="5" fill="{color}"/><text x="{lx + 9}" y="{ly + 4}">{name}</text>')
        lx += 70
    parts.append(f'<line x1="{lx}" y1="{ly - 8}" x2="{lx}" y2="{ly + 8}" stroke="#d62728" stroke-width="2"/>'
                 f'<text x="{lx + 8}" y="{ly + 4}">target</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write(path: Path, s: dict[str, Any], headline: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(s, headline))
