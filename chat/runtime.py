"""What every part of a process shares: where things are (settings), the desk's policy
(config), Redis, the clock and the desk's secret, and the waiting line. Nothing of the web
layer: the stores and services below the sockets never reach up into the hub; a hub that
wants to hear about new work registers `on_work`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from redis.asyncio import Redis

from chat.config import DeskConfig
from chat.queue import Queue
from chat.settings import Settings


def _nothing() -> None:
    return None


@dataclass
class Runtime:
    settings: Settings
    config: DeskConfig
    redis: Redis
    clock: Callable[[], float] = time.time
    demo: bool = False
    secret: bytes = b""  # shared by every hub through Redis; signs cookies, salts hashes
    on_work: Callable[[], None] = _nothing  # a chat waits: the hub of this process offers it to its agents
    queue: Queue = field(init=False)  # the waiting line and who holds what (one set of scripts a process)

    def __post_init__(self) -> None:
        self.queue = Queue(self.redis)
