"""`livechat serve --workers N`: N full hub processes on one port.

Each worker is a forked child that binds its own listening socket with SO_REUSEPORT, so the
kernel spreads new connections over the workers (by a hash of each connection's addresses)
and no process hands sockets to another. Each child runs the whole hub (its own Redis
connections, bus, dispatch and duties); visitors and agents on different workers chat
through Redis exactly as they do across machines.

The parent does what must happen once (configuration, the embedded Redis, migrations)
before it forks, then only supervises:

- SIGTERM or SIGINT: every worker gets SIGTERM and shuts down as a single `serve` does
  (sockets closed with 1012, duties stopped); the parent waits for all of them (at most
  STOP_TIMEOUT seconds, then SIGKILL) and returns 0.
- A worker that dies after it was serving is replaced at once (its sockets reconnect and
  resume, like after any hub restart). More than RESTART_LIMIT replacements within
  RESTART_WINDOW seconds, or a worker that dies before it served at all (a broken
  configuration, a port it cannot bind), stop the others and return 1, for the service
  manager to see.
- A worker whose parent dies gets SIGTERM from the kernel (PR_SET_PDEATHSIG): no orphan
  keeps the port.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import selectors
import signal
import socket
import struct
import sys
import time
import traceback
from collections import deque
from typing import Callable

log = logging.getLogger("livechat")

STOP_TIMEOUT = 15.0  # uvicorn's graceful shutdown (5 s) + the hub's stop (3 s) + margin
RESTART_LIMIT = 5
RESTART_WINDOW = 60.0
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)
_PID = struct.Struct("=i")

# A worker's body: (index, ready) -> exit status; it calls ready() once it serves.
WorkerBody = Callable[[int, Callable[[], None]], int]


def _addresses(host: str, port: int) -> list[tuple]:
    """Every (family, sockaddr) host resolves to, as asyncio's create_server binds them."""
    seen, out = set(), []
    for family, _type, _proto, _name, sockaddr in socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE):
        if (family, sockaddr) not in seen:
            seen.add((family, sockaddr))
            out.append((family, sockaddr))
    return out


def shared_sockets(host: str, port: int) -> list[socket.socket]:
    """This worker's own listening sockets on host:port, bound with SO_REUSEPORT beside the
    other workers' (not yet listening: uvicorn calls listen with its backlog)."""
    sockets = []
    for family, sockaddr in _addresses(host, port):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sockets.append(sock)
    return sockets


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on. SO_REUSEPORT would let a second
    `serve --workers` of the same user share it silently; a plain bind cannot."""
    for family, sockaddr in _addresses(host, port):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise SystemExit(f"livechat: {host}:{port} is already in use") from None
                raise


def _die_with_parent(parent: int) -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class Supervisor:
    """Forks `count` workers running `body`, replaces the ones that die, stops them all on
    SIGTERM/SIGINT. run() returns the process's exit status."""

    def __init__(self, count: int, body: WorkerBody):
        self.count = count
        self.body = body
        self.children: dict[int, int] = {}  # pid -> worker index
        self.serving: set[int] = set()
        self.restarts: deque[float] = deque()
        self.stop_asked = False
        self.stopping = False
        self.failed = False
        self.deadline = 0.0
        self.announced = False

    def _on_signal(self, sig: int, _frame) -> None:
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.stop_asked = True

    def run(self) -> int:
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._ready_r, self._ready_w = os.pipe()
        old_wakeup = signal.set_wakeup_fd(self._wake_w.fileno())
        old_handlers = {sig: signal.signal(sig, self._on_signal) for sig in _SIGNALS}
        try:
            for index in range(self.count):
                self._spawn(index)
            return self._loop()
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(old_wakeup)
            for fd in (self._ready_r, self._ready_w):
                os.close(fd)
            self._wake_r.close()
            self._wake_w.close()

    def _spawn(self, index: int) -> None:
        parent = os.getpid()
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)  # no parent handler runs in the child
        try:
            pid = os.fork()
            if pid == 0:
                self._child(index, parent)  # never returns
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        self.children[pid] = index

    def _child(self, index: int, parent: int) -> None:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for sig in _SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
            os.close(self._ready_r)
            self._wake_r.close()
            self._wake_w.close()
            _die_with_parent(parent)
            ready_fd = self._ready_w
            code = self.body(index, lambda: os.write(ready_fd, _PID.pack(os.getpid())) and None) or 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - a worker's crash is reported, then the parent decides
            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(code)

    def _loop(self) -> int:
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_r, selectors.EVENT_READ)
            selector.register(self._ready_r, selectors.EVENT_READ)
            while self.children:
                timeout = max(0.0, self.deadline - time.monotonic()) if self.stopping else None
                for key, _ in selector.select(timeout):
                    if key.fileobj is self._ready_r:
                        self._read_ready()
                    else:
                        try:
                            while self._wake_r.recv(4096):
                                pass
                        except BlockingIOError:
                            pass
                self._reap()
                if self.stop_asked and not self.stopping:
                    log.info("stopping %d workers", len(self.children))
                    self._stop()
                if self.stopping and time.monotonic() >= self.deadline:
                    for pid in self.children:
                        log.warning("worker %d (pid %d) did not stop in %.0f s: killed", self.children[pid], pid,
                                    STOP_TIMEOUT)
                        self._signal(pid, signal.SIGKILL)
                    self.deadline = time.monotonic() + 3600.0
        return 1 if self.failed else 0

    def _read_ready(self) -> None:
        data = os.read(self._ready_r, 4096)
        for (pid,) in _PID.iter_unpack(data[: len(data) - len(data) % _PID.size]):
            self.serving.add(pid)
        if not self.announced and len(self.serving & set(self.children)) == self.count:
            self.announced = True
            log.info("%d workers serving", self.count)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid not in self.children:
                continue
            index = self.children.pop(pid)
            served = pid in self.serving
            self.serving.discard(pid)
            if self.stopping:
                continue
            how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                   else f"status {os.waitstatus_to_exitcode(status)}")
            now = time.monotonic()
            while self.restarts and self.restarts[0] < now - RESTART_WINDOW:
                self.restarts.popleft()
            if not served:
                log.error("worker %d (pid %d) ended with %s before it served: stopping", index, pid, how)
                self._fail()
            elif len(self.restarts) >= RESTART_LIMIT:
                log.error("worker %d (pid %d) ended with %s; %d restarts within %.0f s: stopping", index, pid, how,
                          len(self.restarts), RESTART_WINDOW)
                self._fail()
            else:
                log.warning("worker %d (pid %d) ended with %s: starting another", index, pid, how)
                self.restarts.append(now)
                self._spawn(index)

    def _fail(self) -> None:
        self.failed = True
        self._stop()

    def _stop(self) -> None:
        self.stopping = True
        self.deadline = time.monotonic() + STOP_TIMEOUT
        for pid in self.children:
            self._signal(pid, signal.SIGTERM)

    @staticmethod
    def _signal(pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
