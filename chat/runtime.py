"""The per-process state every part of the hub shares: settings, desk config, Redis, clock."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from redis.asyncio import Redis

from chat.config import DeskConfig
from chat.settings import Settings

if TYPE_CHECKING:
    from chat.bus import Bus
    from chat.hub import Hub


@dataclass
class Runtime:
    settings: Settings
    config: DeskConfig
    redis: Redis
    clock: Callable[[], float] = time.time
    bus: "Bus | None" = None
    hub: "Hub | None" = None
    demo: bool = False
    secret: bytes = b""  # shared by every hub through Redis; signs cookies, salts hashes
    extras: dict = field(default_factory=dict)
