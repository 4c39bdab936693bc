"""Script calls coalesced into pipelines, for the hot path (storing chat messages); and
whole pipelines coalesced the same way (a new chat's writes, one pipeline per `hello`).

A single redis-py command costs a pool checkout, timeout contexts and a round trip: a few
hundred microseconds of the hub's CPU, more than the work Redis does for it. Calls made
while a round trip is in flight wait for it to end and then go out together as one
pipeline, so under load the fixed cost is paid once per batch and, with `appendfsync
always`, Redis fsyncs once per batch rather than once per message. At low load a call goes
out at once (no timer, no added delay). Calls run in the order they were made.
"""

from __future__ import annotations

import asyncio
from typing import Any, Sequence

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

MAX_BATCH = 256  # calls per pipeline: bounds the latency one batch adds to the next


class ScriptBatcher:
    """One per process and Redis client; ``call`` is safe to use from any task."""

    def __init__(self, redis: Redis, max_batch: int = MAX_BATCH):
        self.redis = redis
        self.max_batch = max_batch
        self._pending: list[tuple[AsyncScript, Sequence[Any], Sequence[Any], asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    async def call(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """EVALSHA ``script`` in the next pipeline; its result, or the error it raised."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((script, keys, args, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="redis-batch")
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                try:
                    results = await self._run(batch)
                except BaseException as exc:  # the connection failed: every call in it fails
                    for *_, future in batch:
                        if not future.done():
                            future.set_exception(exc) if isinstance(exc, Exception) else future.cancel()
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (*_, future), result in zip(batch, results):
                    if future.done():  # its caller went away (a closed socket)
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._flusher = None
            if self._pending:  # cancelled with calls still waiting: they must not hang
                for *_, future in self._pending:
                    future.cancel()
                self._pending.clear()

    async def _run(self, batch: list) -> list[Any]:
        results = await self._pipeline(batch)
        missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if missing:  # Redis restarted (or SCRIPT FLUSH): load and run those again, in order
            for script in {id(batch[i][0]): batch[i][0] for i in missing}.values():
                await self.redis.script_load(script.script)
            for i, result in zip(missing, await self._pipeline([batch[i] for i in missing])):
                results[i] = result
        return results

    async def _pipeline(self, batch: list) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for script, keys, args, _ in batch:
                # execute_command: a cluster pipeline refuses its evalsha() method, not the command
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            return await pipe.execute(raise_on_error=False)


MAX_BATCH_COMMANDS = 1024  # commands per coalesced pipeline


class PipelineBatcher:
    """Pipelines (nothing watched, no transaction) run together: those handed over while a
    round trip is in flight go out as one when it ends, each caller's commands together and
    in its order, each caller getting its own replies. Without a transaction a pipeline is
    not atomic anyway, so sharing a round trip changes nothing for Redis; for the hub it is
    one write, one read and, with `appendfsync always`, one fsync for many visitors arriving
    at once. A caller cancelled before its turn has nothing sent."""

    def __init__(self, redis: Redis, max_commands: int = MAX_BATCH_COMMANDS):
        self.redis = redis
        self.max_commands = max_commands
        self._pending: list[tuple[list[Any], asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    async def execute(self, pipe: Any) -> list[Any]:
        """Run ``pipe``'s queued commands in the next round trip; their results, errors in
        their places (as ``pipe.execute(raise_on_error=False)``)."""
        stack, pipe.command_stack = pipe.command_stack, []
        if not stack:
            return []
        future = asyncio.get_running_loop().create_future()
        self._pending.append((stack, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="redis-pipelines")
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, size = [], 0
                while self._pending and (not batch or size + len(self._pending[0][0]) <= self.max_commands):
                    stack, future = self._pending.pop(0)
                    if not future.done():  # its caller was cancelled: nothing of it is sent
                        batch.append((stack, future))
                        size += len(stack)
                if not batch:
                    continue
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        pipe.command_stack = [command for stack, _ in batch for command in stack]
                        results = await pipe.execute(raise_on_error=False)
                except BaseException as exc:  # the connection failed: every pipeline in it fails
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc) if isinstance(exc, Exception) else future.cancel()
                    if not isinstance(exc, Exception):
                        raise
                    continue
                start = 0
                for stack, future in batch:
                    if not future.done():
                        future.set_result(results[start:start + len(stack)])
                    start += len(stack)
        finally:
            self._flusher = None
            for _, future in self._pending:  # cancelled with pipelines still waiting: they must not hang
                future.cancel()
            self._pending.clear()
