"""The code keeps its shape: layers in one direction (import-linter, configured in
pyproject.toml) and no import cycle between modules."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("chat", "agents", "transcripts", "widget", "helpcentre")


def test_the_layer_contracts_are_kept():
    """lint-imports reports every contract kept (pure, stores, services, web, wiring)."""
    done = subprocess.run([str(Path(sys.executable).with_name("lint-imports"))], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_no_module_imports_itself_round_about():
    """No cycle of imports (that run) between the project's modules."""
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    modules = sorted(graph.modules)
    edges = {m: sorted(i for i in graph.find_modules_directly_imported_by(m) if i in graph.modules) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for module in modules:
        if module not in index:
            visit(module)
    assert cycles == [], cycles


# A key handed to redis.call from ARGV or built with `..`, and a local built from ARGV with `..`
# (how key names were once made inside scripts: `ARGV[4] .. r.agent`).
LUA_BUILT_KEY = (re.compile(r"redis\.call\(\s*[^,()]+,\s*(ARGV\[|[^,()]*\.\.)"),
                 re.compile(r"local\s+\w+\s*=[^\n]*ARGV\[\d+\]\s*\.\."))


def test_lua_scripts_take_every_key_in_keys():
    """No Lua script in the project builds a key name or takes one in ARGV: its keys are in KEYS."""
    found = []
    for package in (*PACKAGES, "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and "redis.call" in node.value:
                    found += [f"{path.relative_to(ROOT)}: {m.group(0)}" for rule in LUA_BUILT_KEY
                              for m in rule.finditer(node.value)]
    assert found == []
