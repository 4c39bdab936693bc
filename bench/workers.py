"""Load-generator processes: separate OS processes from every server, pinned to the client
CPU(s), each running one LoadClient on uvloop and obeying commands sent over a pipe.

The parent calls ``pool.call("relay", ...)``; every process runs ``LoadClient.cmd_relay``
and the parent gets the list of results back (or the child's traceback as an error).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import traceback
from multiprocessing.connection import Connection
from typing import Any

from bench.machine import CLIENT_CPUS, pin, raise_open_files


def _child(conn: Connection, index: int) -> None:
    pin(CLIENT_CPUS)
    raise_open_files()
    try:
        import uvloop

        uvloop.run(_serve(conn, index))
    except ImportError:  # pragma: no cover
        asyncio.run(_serve(conn, index))


async def _recv(conn: Connection) -> Any:
    """Wait for a command without blocking the loop, then read it whole. (The event loop
    makes a watched fd non-blocking; a pickled command may span many pipe reads, so the fd
    goes back to blocking mode for the read, and for the answer's write.)"""
    loop = asyncio.get_running_loop()
    if not conn.poll():
        ready = loop.create_future()
        loop.add_reader(conn.fileno(), lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            loop.remove_reader(conn.fileno())
    os.set_blocking(conn.fileno(), True)
    return conn.recv()


async def _serve(conn: Connection, index: int) -> None:
    from bench.load import DIALECTS

    client = None
    while True:
        try:
            name, kwargs = await _recv(conn)
        except EOFError:
            break
        if name == "stop":
            if client is not None:
                await client.cmd_close_all()
            conn.send(("ok", None))
            break
        try:
            if name == "setup":
                dialect = kwargs.pop("dialect")
                if client is not None:
                    await client.cmd_close_all()
                client = DIALECTS[dialect](index, **kwargs)
                result = None
            else:
                result = await getattr(client, "cmd_" + name)(**kwargs)
            conn.send(("ok", result))
        except Exception:  # noqa: BLE001 - the parent shows it
            conn.send(("error", traceback.format_exc()))


class WorkerError(RuntimeError):
    pass


class ClientPool:
    """N client processes. ``call`` sends one command to each (same kwargs, or one dict per
    process) and waits for all answers."""

    def __init__(self, processes: int):
        ctx = mp.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[mp.Process] = []
        for i in range(processes):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_child, args=(child, i), daemon=True, name=f"bench-client-{i}")
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def __len__(self) -> int:
        return len(self.procs)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid]

    def call(self, name: str, kwargs: dict[str, Any] | list[dict[str, Any]] | None = None, timeout: float = 600.0,
             only: list[int] | None = None) -> list[Any]:
        targets = only if only is not None else list(range(len(self.conns)))
        per = kwargs if isinstance(kwargs, list) else [dict(kwargs or {}) for _ in targets]
        for i, kw in zip(targets, per):
            self.conns[i].send((name, kw))
        results = []
        for i in targets:
            if not self.conns[i].poll(timeout):
                raise WorkerError(f"client process {i} did not answer {name!r} within {timeout:.0f} s")
            status, value = self.conns[i].recv()
            if status != "ok":
                raise WorkerError(f"client process {i} failed in {name!r}:\n{value}")
            results.append(value)
        return results

    def call_one(self, index: int, name: str, timeout: float = 600.0, **kwargs: Any) -> Any:
        return self.call(name, [kwargs], timeout, only=[index])[0]

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("stop", {}))
                conn.poll(5) and conn.recv()
            except (OSError, EOFError):
                pass
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(2)

    def __enter__(self) -> "ClientPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
