"""A strict reader of the Prometheus text format (what /metrics serves)."""

from __future__ import annotations

import re
from typing import Any

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(\{{(.*)\}})?\s+(\S+)(\s+-?\d+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_prometheus(text: str) -> dict[str, Any]:
    """Read exposition text strictly; return {"types": {family: type}, "samples": [(name,
    labels, value)]}. Any line that is not HELP, TYPE, a comment or a sample fails."""
    types: dict[str, str] = {}
    samples: list[tuple[str, dict[str, str], float]] = []
    assert text.endswith("\n"), "exposition must end with a newline"
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert re.fullmatch(_NAME, name) and kind in _TYPES, f"line {number}: bad TYPE {line!r}"
            assert name not in types, f"line {number}: second TYPE for {name}"
            types[name] = kind
            continue
        if line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"line {number}: not a sample: {line!r}"
        name, _, raw_labels, value, _ = match.groups()
        labels: dict[str, str] = {}
        rest = raw_labels or ""
        while rest:
            lab = _LABEL.match(rest)
            assert lab, f"line {number}: bad labels {raw_labels!r}"
            labels[lab.group(1)] = lab.group(2)
            rest = rest[lab.end():]
        samples.append((name, labels, float(value)))
    return {"types": types, "samples": samples}


def sample(parsed: dict[str, Any], name: str, **labels: str) -> float | None:
    for sname, slabels, value in parsed["samples"]:
        if sname == name and all(slabels.get(k) == v for k, v in labels.items()):
            return value
    return None
