"""Fixed-window counters in Redis, shared by every hub: how often something happened in the
current window. Behind every rate limit per client address (new chats, help searches,
private ticket pages, "I have a reference") and the daily cap of confirmations per recipient.

A refused attempt counts too, so a flood stays refused until its window ends. A client
address is only ever stored as a salted hash (`address_key`); loopback is exempt: it is a
local tool (a health check, a load test) or a proxy that forwards no client address, and then
every visitor would share one allowance.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Callable

from redis.asyncio import Redis


async def count(redis: Redis, key: str, window: int) -> int:
    """Count one more in the window of `key` (which starts with the first count) and return
    the count so far."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(key, 0, ex=window, nx=True)
        pipe.incr(key)
        _, total = await pipe.execute()
    return int(total)


async def within(redis: Redis, key: str, limit: int, window: int) -> bool:
    """Count one and say whether the window is still within `limit` (0: no limit, nothing counted)."""
    return not limit or await count(redis, key, window) <= limit


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def address_key(secret: bytes, purpose: str, host: str) -> str:
    """The salted hash a client address is counted under (never the address itself)."""
    return hashlib.sha256(secret + f"|{purpose}|{host}".encode("utf-8", "replace")).hexdigest()[:32]


async def address_within(redis: Redis, secret: bytes, host: str, purpose: str, key_for: Callable[[str], str],
                         limit: int, window: int) -> bool:
    """Count one request of a client address for `purpose` (its key built by `key_for` from
    the address's hash) and say whether it is within `limit`; loopback is never limited."""
    if not limit or is_loopback(host):
        return True
    return await within(redis, key_for(address_key(secret, purpose, host)), limit, window)
