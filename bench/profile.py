"""Optional sampling profile of a server during a measured window (``--profile``).

Runs ``py-spy record --format raw`` (collapsed stacks) against the server's pid for the
window, then folds the stacks into the functions that own the most samples: "self" (the
sampled frame itself) and "total" (anywhere on the stack). py-spy is not a dependency of the
hub; install it with ``.venv/bin/pip install py-spy`` (it needs ptrace rights: root, or
kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
import sys
from pathlib import Path


def py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


class Profiler:
    """``start()`` before the window, ``stop()`` after it; ``summary()`` folds the samples."""

    def __init__(self, pid: int, out: Path, rate: int = 250):
        self.pid, self.out, self.rate = pid, out, rate
        self.process: subprocess.Popen | None = None
        self.binary = py_spy()

    def start(self) -> bool:
        if not self.binary:
            return False
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "record", "--pid", str(self.pid), "--rate", str(self.rate), "--format", "raw",
             "--nonblocking", "--output", str(self.out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """End the recording (SIGINT makes py-spy write its output) and wait for the file."""
        if self.process:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def summary(self, top: int = 25) -> dict:
        return fold(self.out, top) if self.out.exists() else {}


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    parts = path.split("/")
    if "site-packages" in parts:
        i = parts.index("site-packages")
        short = "/".join(parts[i + 1 :])
    elif "main" in parts:
        short = "/".join(parts[parts.index("main") + 1 :])
    else:
        short = "/".join(parts[-2:])
    return f"{name} ({short})"


def fold(path: Path, top: int = 25) -> dict:
    """Self and total sample shares per function from py-spy's raw (collapsed) output."""
    own: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    modules: collections.Counter = collections.Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [_short(f) for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
        leaf_module = frames[-1].rsplit("(", 1)[-1].rstrip(")")
        modules[leaf_module.split("/")[0] if "/" in leaf_module else leaf_module] += n
    if not samples:
        return {}
    pct = lambda n: round(100.0 * n / samples, 1)  # noqa: E731
    return {
        "samples": samples,
        "self": [[f, pct(n)] for f, n in own.most_common(top)],
        "total": [[f, pct(n)] for f, n in total.most_common(top * 2)],
        "self_by_package": [[m, pct(n)] for m, n in modules.most_common(15)],
    }
