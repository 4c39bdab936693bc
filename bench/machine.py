"""The machine a run happens on, and how its processes share it.

The hub (and its Redis) run on SERVER_CPUS, the load generator on CLIENT_CPUS, so that the
clients never steal the hub's core. Figures read from /proc: RSS and CPU time of a pid.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from chat.rlimits import raise_open_files  # noqa: F401 - re-exported for the scenarios

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


_ALL = _cpus()
# With two or more cores the hub side gets the first and the clients the rest; on one core
# both share it (and the output says so).
SERVER_CPUS: set[int] = {_ALL[0]}
CLIENT_CPUS: set[int] = set(_ALL[1:]) or {_ALL[0]}


def pin(cpus: set[int], pid: int = 0) -> bool:
    """Restrict a process (0 = this one) to the given CPUs; False where the OS refuses."""
    try:
        os.sched_setaffinity(pid, cpus)
        return True
    except (AttributeError, OSError):
        return False


def pin_server() -> None:
    """preexec_fn for a server child: hub side CPUs."""
    pin(SERVER_CPUS)




def lift_open_files(needed: int) -> int:
    """raise_open_files(), and first the hard limit too when a run needs more than it (the
    idle scenario at 50,000 sockets): allowed to root with CAP_SYS_RESOURCE, up to
    fs.nr_open; refused silently otherwise. Every process started afterwards inherits it.
    Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and needed > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
        except (ValueError, OSError):
            pass
    return raise_open_files()


def open_files_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass(frozen=True)
class MachineInfo:
    cores: int
    cpu_model: str
    date: str
    python: str
    kernel: str
    server_cpus: list[int]
    client_cpus: list[int]
    open_files: int
    nice: int = 0

    def headline(self) -> str:
        return (
            f"{self.date} | {self.cores} cores, {self.cpu_model} | Linux {self.kernel} | Python {self.python} | "
            f"hub + redis pinned to CPU {','.join(map(str, self.server_cpus))}, "
            f"load clients pinned to CPU {','.join(map(str, self.client_cpus))} | nice {self.nice} | "
            f"open files {self.open_files}"
        )


def machine_info(open_files: int, nice: int = 0) -> MachineInfo:
    return MachineInfo(
        cores=os.cpu_count() or 1,
        cpu_model=cpu_model(),
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        python=sys.version.split()[0],
        kernel=platform.release(),
        server_cpus=sorted(SERVER_CPUS),
        client_cpus=sorted(CLIENT_CPUS),
        open_files=open_files,
        nice=nice,
    )


def rss_kb(pid: int) -> int:
    """Resident set size of a process in KiB (VmRSS), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # after the ")" the fields start at 3 (state); utime is field 14, stime 15
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def run_delay(pid: int) -> float:
    """Seconds the process's main thread has spent runnable but waiting for a CPU
    (/proc/PID/schedstat, second field): the direct measure of competition for the core."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class CpuMeter:
    """CPU% of some processes over a wall-clock window, and the % of the window each one
    was ready to run but waited for a CPU: start(), then percent() / waited()."""

    def __init__(self, pids: dict[str, int]):
        self.pids = {name: pid for name, pid in pids.items() if pid}
        self.start()

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.c0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.w0 = {name: run_delay(pid) for name, pid in self.pids.items()}
        self.t1 = 0.0

    def percent(self) -> dict[str, float]:
        self.t1 = time.monotonic()
        self.c1 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.w1 = {name: run_delay(pid) for name, pid in self.pids.items()}
        wall = max(self.t1 - self.t0, 1e-9)
        return {name: round(100.0 * (self.c1[name] - self.c0[name]) / wall, 1) for name in self.pids}

    def waited(self) -> dict[str, float]:
        """Call after percent(): % of the window each process waited in the run queue."""
        wall = max(self.t1 - self.t0, 1e-9)
        return {name: round(100.0 * (self.w1[name] - self.w0[name]) / wall, 1) for name in self.pids}


def _cpu_times() -> dict[str, tuple[int, int, int]]:
    """Per-CPU (task time, steal, total) jiffies from /proc/stat. Task time is user + nice +
    system: interrupt and softirq time (loopback networking lands there) is left out, since
    it is not charged to any process and would look like another program's use."""
    out = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu") and line[3].isdigit():
                    name, *values = line.split()
                    nums = [int(v) for v in values] + [0] * 8
                    out[name] = (nums[0] + nums[1] + nums[2], nums[7], sum(nums[:8]))
    except OSError:
        pass
    return out


class SystemMeter:
    """How much of each CPU went to processes (any process) over a window, and how much the
    hypervisor stole: compared with our own processes' CPU it shows whether other programs
    (or other virtual machines) competed with the run."""

    def __init__(self) -> None:
        self.start()

    def start(self) -> None:
        self.t0 = _cpu_times()

    def percent(self) -> dict[str, float]:
        t1 = _cpu_times()
        out = {}
        for name, (task1, steal1, total1) in t1.items():
            task0, steal0, total0 = self.t0.get(name, (0, 0, 0))
            span = max(total1 - total0, 1)
            out[name] = round(100.0 * (task1 - task0) / span, 1)
            out[name + "_steal"] = round(100.0 * (steal1 - steal0) / span, 1)
        return out


def load_average() -> list[float]:
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:
        return []


def contention(waited: dict[str, float], ours: dict[str, float], cores: dict[str, float]) -> dict[str, float]:
    """Whether other programs competed with us, per side (hub + Redis; clients): the worst
    run-queue wait of our processes (% of the window, from CpuMeter.waited(); the hub and
    its Redis also wait for each other, sharing one core) and the share of that side's
    core(s) used by processes that are not ours (SystemMeter minus CpuMeter). Only both
    together mean that the figures were disturbed."""
    server = [v for k, v in waited.items() if k in ("server", "hub", "redis")]
    client = [v for k, v in waited.items() if k.startswith("client")]
    server_cores = sum(cores.get(f"cpu{c}", 0.0) + cores.get(f"cpu{c}_steal", 0.0) for c in SERVER_CPUS)
    client_cores = sum(cores.get(f"cpu{c}", 0.0) + cores.get(f"cpu{c}_steal", 0.0) for c in CLIENT_CPUS)
    server_ours = sum(v for k, v in ours.items() if k in ("server", "hub", "redis"))
    client_ours = sum(v for k, v in ours.items() if k.startswith("client"))
    return {
        "server_wait_pct": max(server, default=0.0),
        "client_wait_pct": max(client, default=0.0),
        "server_core_other_pct": round(max(0.0, server_cores - server_ours), 1),
        "client_core_other_pct": round(max(0.0, client_cores - client_ours), 1) if SERVER_CPUS != CLIENT_CPUS else 0.0,
    }


def prioritize(pid: int, nice: int) -> int:
    """Give a process (0 = this one) the nice value ``nice``, and its autogroup too: with
    kernel.sched_autogroup_enabled, nice only ranks processes within one session, and every
    server the bench starts is a session of its own. Children inherit both. Returns the nice
    value in effect (unchanged where the OS does not allow it: no root, no CAP_SYS_NICE)."""
    if nice:
        try:
            if nice < os.getpriority(os.PRIO_PROCESS, pid):
                os.setpriority(os.PRIO_PROCESS, pid, nice)
        except (AttributeError, OSError):
            pass
        try:
            with open(f"/proc/{pid or 'self'}/autogroup", "w") as f:
                f.write(str(nice))
        except OSError:
            pass
    try:
        return os.getpriority(os.PRIO_PROCESS, pid)
    except (AttributeError, OSError):
        return 0


def autogroup_nice() -> int | None:
    try:
        with open("/proc/self/autogroup") as f:
            return int(f.read().split("nice")[1])
    except (OSError, IndexError, ValueError):
        return None


def raise_priority(nice: int) -> int:
    """prioritize() this process; everything it starts afterwards inherits the nice value."""
    return prioritize(0, nice)


def restore_autogroup(nice: int | None) -> None:
    """Put this session's autogroup back to its nice value from before the run."""
    if nice is None:
        return
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(nice))
    except OSError:
        pass
