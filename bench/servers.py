"""The servers under test, each a child process on the hub's CPU with a Redis of its own.

- ``OurHub``: the real ``livechat serve`` (the console script next to this Python), with
  REDIS_URL pointing at a redis-server the bench starts (chat.embedded_redis.EmbeddedRedis,
  append-only file, fsync policy as asked), and a LIVECHAT_CONFIG with every plan 24/7.
- ``BaselineServer``: ``python -m bench.baselines.<name>`` on its own Redis.

Everything listens on 127.0.0.1 (the hub) or a unix socket (Redis).
"""

from __future__ import annotations

import http.client
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chat.embedded_redis import EmbeddedRedis

from bench.machine import CLIENT_CPUS, SERVER_CPUS, pin, pin_server, prioritize

ROOT = Path(__file__).resolve().parent.parent
LIVECHAT = str(Path(sys.executable).with_name("livechat"))
HOST = "127.0.0.1"
SITE_SECRET = "bench-site-secret-0123456789abcdef"

# Every plan open around the clock with patient timers, so that nothing but the scenario
# itself changes a chat's state during a run.
BENCH_CONFIG = """
[plans.free]
head_start = 0
max_wait = 86400
hours = "24/7"

[plans.plus]
head_start = 120
max_wait = 86400
hours = "24/7"

[plans.professional]
head_start = 300
max_wait = 86400
hours = "24/7"

[plans.visionary]
head_start = 900
max_wait = 86400
hours = "24/7"

[timing]
agent_grace = 300
visitor_grace = 600
offline_idle = 86400
wait_choice_timeout = 86400
heartbeat = 5

# Every load client connects from 127.0.0.1: the per-address new-chat guard is off. Load
# clients write faster than people: the per-socket flood limits and the per-chat caps are
# raised (still checked, so their cost is in the figures; the scale scenario's chats carry
# more than a thousand messages each).
[limits]
new_chats_per_minute = 0
visitor_messages_per_chat = 1000000
visitor_bytes_per_chat = 1073741824
visitor_frames_per_second = 1000
visitor_frame_burst = 2000
agent_frames_per_second = 1000
agent_frame_burst = 2000
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http_get(port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def wait_http(port: int, path: str, process: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    """Wait until GET path answers 200 (not a fixed sleep), or fail with the log's tail."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail(log)}")
        try:
            if http_get(port, path, timeout=1.0)[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} not ready after {timeout:.0f} s:\n{tail(log)}")
        time.sleep(0.05)


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def work_root() -> Path:
    """Scratch space on a real disk (fsync must cost what it costs), removed after the run."""
    base = ROOT / "bench" / "results" / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="run-", dir=base))


class _Server:
    """A Redis plus one server process, both pinned to the hub's CPU."""

    name = "server"

    def __init__(self, workdir: Path, fsync: str = "always"):
        self.workdir = workdir
        self.fsync = fsync
        self.port = free_port()
        self.redis = EmbeddedRedis(workdir / "redis", fsync=fsync, tie_to_parent=True)
        self.redis_url = ""
        self.process: subprocess.Popen | None = None
        self.log = workdir / f"{self.name}.log"

    @property
    def pid(self) -> int:
        return self.process.pid if self.process else 0

    @property
    def redis_pid(self) -> int:
        return self.redis.process.pid if self.redis.process else 0

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVECHAT_", "REDIS_URL", "SMTP_URL"))}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    health_path = "/healthz"

    def start_redis(self) -> str:
        self.redis_url = self.redis.start()
        pin(SERVER_CPUS, self.redis_pid)
        prioritize(self.redis_pid, os.getpriority(os.PRIO_PROCESS, 0))  # its own session: own autogroup
        return self.redis_url

    def start(self) -> "_Server":
        if not self.redis_url:
            self.start_redis()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), env=self.env(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=pin_server, start_new_session=True,
            )
        prioritize(self.pid, os.getpriority(os.PRIO_PROCESS, 0))
        wait_http(self.port, self.health_path, self.process, self.log)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.redis.stop()

    def __enter__(self) -> "_Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class OurHub(_Server):
    """``livechat serve`` on its own redis-server (REDIS_URL), every plan 24/7."""

    name = "livechat"

    def env(self) -> dict[str, str]:
        env = super().env()
        config = self.workdir / "livechat.toml"
        config.write_text(BENCH_CONFIG)
        (self.workdir / "data").mkdir(exist_ok=True)
        env.update(
            REDIS_URL=self.redis_url,
            LIVECHAT_CONFIG=str(config),
            LIVECHAT_DATA_DIR=str(self.workdir / "data"),
            LIVECHAT_SITE_SECRET=SITE_SECRET,
            LIVECHAT_SUPPORT_ADDRESS="support@example.org",
            LIVECHAT_REDIS_FSYNC=self.fsync,
            LIVECHAT_WORKERS="1",  # one hub process, measured by its pid (scale runs --workers itself)
        )
        return env

    def command(self) -> list[str]:
        # BENCH_HUB_COMMAND swaps in another launcher taking livechat's arguments (e.g. a
        # wrapper trying out a change to the core), to compare it with the same run.
        launcher = shlex.split(os.environ.get("BENCH_HUB_COMMAND", "")) or [LIVECHAT]
        return [*launcher, "serve", "--host", HOST, "--port", str(self.port)]


class BaselineServer(_Server):
    """One of bench/baselines/*.py: a relay on uvicorn with its own Redis."""

    def __init__(self, module: str, workdir: Path):
        self.name = module
        super().__init__(workdir, fsync="always")
        self.module = module

    def command(self) -> list[str]:
        return [sys.executable, "-m", f"bench.baselines.{self.module}", "--port", str(self.port), "--redis-url", self.redis_url]


SYSTEM_REDIS = "/usr/bin/redis-server"  # Debian's redis-server 7: sharded pub/sub, Redis Cluster


class RedisNodes:
    """Debian's redis-server 7 on loopback TCP ports: one plain node, or ``masters`` nodes
    joined into a Redis Cluster (no replicas), each with the append-only file and fsync
    policy asked; on every CPU (the scale scenario does not pin its servers)."""

    def __init__(self, workdir: Path, masters: int = 1, fsync: str = "always"):
        self.workdir = workdir
        self.masters = masters
        self.fsync = fsync
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        if self.masters == 1:
            return f"redis://{HOST}:{self.ports[0]}/0"
        return "redis+cluster://" + ",".join(f"{HOST}:{p}" for p in self.ports)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def _ports(self) -> list[int]:
        """Free ports whose cluster-bus twins (port + 10000) are free too."""
        found: list[int] = []
        while len(found) < self.masters:
            port = free_port()
            if port + 10000 < 65536 and port not in found and _bindable(port + 10000):
                found.append(port)
        return found

    def start(self) -> "RedisNodes":
        if not Path(SYSTEM_REDIS).exists():
            raise RuntimeError(f"no {SYSTEM_REDIS} (Redis 7): `make redis7` installs Debian's redis-server")
        self.ports = self._ports()
        cluster = self.masters > 1
        for port in self.ports:
            folder = self.workdir / f"redis-{port}"
            folder.mkdir(parents=True, exist_ok=True)
            args = [SYSTEM_REDIS, "--port", str(port), "--bind", HOST, "--dir", str(folder), "--save", "",
                    "--appendonly", "yes", "--appendfsync", self.fsync, "--logfile", str(folder / "redis.log"),
                    "--protected-mode", "no"]
            if cluster:
                args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            self.processes.append(subprocess.Popen(args, cwd=folder, preexec_fn=_unpinned, start_new_session=True))
            prioritize(self.processes[-1].pid, os.getpriority(os.PRIO_PROCESS, 0))  # own session: own autogroup
        from redis import Redis as SyncRedis

        def answers(port: int, what: str = "") -> bool:
            try:
                client = SyncRedis(host=HOST, port=port, socket_connect_timeout=0.5)
                try:
                    if not what:
                        return bool(client.ping())
                    info = client.execute_command("CLUSTER INFO")  # parsed into a dict by some redis-py versions
                    return info.get("cluster_state") == "ok" if isinstance(info, dict) else b"cluster_state:ok" in info
                finally:
                    client.close()
            except Exception:  # noqa: BLE001 - not up yet
                return False

        _wait(lambda: all(answers(p) for p in self.ports), 20, "redis-server 7 nodes answering")
        if cluster:
            cli = shutil.which("redis-cli", path="/usr/bin") or "redis-cli"
            subprocess.run([cli, "--cluster", "create", *[f"{HOST}:{p}" for p in self.ports], "--cluster-replicas", "0",
                            "--cluster-yes"], check=True, capture_output=True, timeout=60)
            _wait(lambda: all(answers(p, "cluster") for p in self.ports), 30, "cluster_state:ok on every node")
        return self

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> "RedisNodes":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ScaleHub(OurHub):
    """``livechat serve --workers N`` on a Redis the caller started (one node or a cluster),
    on every CPU: N hub processes share the machine with their Redis and the load generator."""

    def __init__(self, workdir: Path, redis_url: str, workers: int, fsync: str = "always"):
        super().__init__(workdir, fsync=fsync)
        self.redis_url = redis_url
        self.workers = workers
        self.worker_pids: list[int] = []

    def env(self) -> dict[str, str]:
        env = super().env()
        env["LIVECHAT_WORKERS"] = str(self.workers)
        return env

    def command(self) -> list[str]:
        return [*super().command(), "--workers", str(self.workers)]

    def start(self) -> "ScaleHub":
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command(), env=self.env(), cwd=ROOT, stdout=log,
                                            stderr=subprocess.STDOUT, preexec_fn=_unpinned, start_new_session=True)
        prioritize(self.pid, os.getpriority(os.PRIO_PROCESS, 0))
        wait_http(self.port, self.health_path, self.process, self.log)
        if self.workers == 1:
            self.worker_pids = [self.pid]
            return self
        answered: set[int] = set()

        def every_worker_answers() -> bool:  # /healthz came from one; wait until each listens
            text = http_get(self.port, "/metrics")[2].decode()
            answered.add(int(text.split('livechat_process_info{pid="', 1)[1].split('"', 1)[0]))
            return len(answered) >= self.workers

        _wait(every_worker_answers, 30, f"{self.workers} workers answering")
        self.worker_pids = sorted(answered)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _unpinned() -> None:
    """preexec_fn: every CPU (the bench itself runs pinned to the clients' CPUs)."""
    pin(SERVER_CPUS | CLIENT_CPUS)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
            return True
        except OSError:
            return False


def _wait(predicate, timeout: float, what: str) -> None:
    """Poll a condition until it holds (not a fixed sleep), or fail naming it."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
