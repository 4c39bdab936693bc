"""Latency samples and their percentiles (nearest rank, in milliseconds)."""

from __future__ import annotations

import math
from array import array
from typing import Iterable

PERCENTILES = (50, 95, 99)


def samples_from(blobs: Iterable[bytes]) -> array:
    """Join latency arrays (seconds, float64) sent back by the client processes."""
    out = array("d")
    for blob in blobs:
        out.frombytes(blob)
    return out


def percentile(sorted_values: list[float] | array, p: float) -> float:
    """Nearest-rank percentile of already sorted values (p in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(seconds: Iterable[float]) -> dict[str, float]:
    """count, mean, p50, p95, p99, max of latencies given in seconds, reported in ms."""
    values = sorted(seconds)
    if not values:
        return {"count": 0, "mean_ms": math.nan, "p50_ms": math.nan, "p95_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan}
    out: dict[str, float] = {"count": len(values), "mean_ms": round(1000 * sum(values) / len(values), 3)}
    for p in PERCENTILES:
        out[f"p{p}_ms"] = round(1000 * percentile(values, p), 3)
    out["max_ms"] = round(1000 * values[-1], 3)
    return out


def ratio(a: float | None, b: float | None, digits: int = 2) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, digits)
