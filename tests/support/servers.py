"""The hub under test as real processes: `livechat serve` / `livechat worker`, the desk file
they read (fast timers), and free loopback ports.

Everything binds to loopback on free ports and is waited on by condition, never by sleeping
a fixed time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
LIVECHAT = str(Path(sys.executable).with_name("livechat"))

TEST_SITE_SECRET = "test-site-secret-0123456789"

# Fast timers so that grace periods and deadlines elapse in a test's lifetime.
TEST_CONFIG = """
[plans.free]
head_start = 0
max_wait = 600
hours = "24/7"

[plans.plus]
head_start = 120
max_wait = 900
hours = "24/7"

[plans.professional]
head_start = 300
max_wait = 1200
hours = "24/7"

[plans.visionary]
head_start = 900
max_wait = 1800
hours = "24/7"

[emergency]
head_start = 3600
guard_ttl = 3600

[timing]
agent_grace = 2.0
visitor_grace = 3.0
offline_idle = 600
wait_choice_timeout = 60
heartbeat = 0.2
"""


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class HubProcess:
    """One `livechat serve` (or `worker`) child process on a loopback port."""

    env: dict[str, str]
    data_dir: Path
    port: int = field(default_factory=free_port)
    command: str = "serve"
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> "HubProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [LIVECHAT, self.command]
        if self.command == "serve":
            args += ["--host", "127.0.0.1", "--port", str(self.port)]
        args += list(self.extra_args)
        log = open(self.data_dir / f"{self.command}-{self.port}.log", "ab")
        self.process = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        log.close()
        if wait and self.command == "serve":
            self.wait_healthy()
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/healthz", timeout=1) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_healthy(self, timeout: float = 20.0) -> None:
        def ready():
            if self.process and self.process.poll() is not None:
                raise AssertionError(f"livechat {self.command} exited with {self.process.returncode}: {self.log_tail()}")
            return self.healthy()

        wait_until(ready, timeout, 0.05, f"livechat serve on port {self.port}")

    def log_tail(self, chars: int = 3000) -> str:
        path = self.data_dir / f"{self.command}-{self.port}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def terminate(self, timeout: float = 10.0) -> int | None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode if self.process else None

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def hub_env(redis_url: str | None, data_dir: Path, config_path: Path | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVECHAT_", "REDIS_URL", "SMTP_URL"))}
    env.update(
        LIVECHAT_DATA_DIR=str(data_dir),
        LIVECHAT_SITE_SECRET=TEST_SITE_SECRET,
        LIVECHAT_SUPPORT_ADDRESS="support@example.org",
        PYTHONUNBUFFERED="1",
        LIVECHAT_WORKERS="1",  # one process per hub, as the tests' pids assume; --workers overrides
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    if config_path:
        env["LIVECHAT_CONFIG"] = str(config_path)
    env.update(extra)
    return env


def wait_port_free(port: int, timeout: float = 10.0) -> None:
    """Until nothing listens on the port any more (a killed server's socket is gone)."""
    def free() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) != 0

    wait_until(free, timeout, 0.02, f"port {port} to be free")


def start_configured_hub(redis_url: str, data_dir: Path, config_text: str) -> HubProcess:
    """A started `livechat serve` with a desk file of its own (a test's own timings or
    limits), its data and log in ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "desk.toml"
    config.write_text(config_text)
    process = HubProcess(hub_env(redis_url, data_dir, config), data_dir)
    process.start()
    return process
