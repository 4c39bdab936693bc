"""Login rate limiting: failed attempts counted per username and per client address.

The address is never stored: the key holds an HMAC of it under the hubs' shared secret, so
Redis (and its backups) hold no IP addresses. Counters expire after the window, so a locked
account frees itself; a successful login clears the username's counter only (clearing the
address counter would let one valid account reset an attacker's budget).
"""

from __future__ import annotations

import hashlib
import hmac

from chat import keys
from chat.runtime import Runtime

WINDOW = 300  # seconds
USERNAME_LIMIT = 5  # failures per username per window
ADDRESS_LIMIT = 20  # failures per client address per window (an office may share one address)


def _digest(rt: Runtime, kind: str, value: str) -> str:
    return hmac.new(rt.secret, f"{kind}:{value}".encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:32]


def username_key(rt: Runtime, username: str) -> str:
    return keys.login_attempts("u:" + _digest(rt, "user", username.strip().lower()[:64]))


def address_key(rt: Runtime, address: str | None) -> str:
    return keys.login_attempts("a:" + _digest(rt, "addr", address or "unknown"))


async def blocked(rt: Runtime, username: str, address: str | None) -> int:
    """Seconds until another attempt is allowed (0 = allowed now)."""
    ukey, akey = username_key(rt, username), address_key(rt, address)
    async with rt.redis.pipeline(transaction=False) as pipe:
        pipe.get(ukey)
        pipe.get(akey)
        pipe.ttl(ukey)
        pipe.ttl(akey)
        ucount, acount, uttl, attl = await pipe.execute()
    wait = 0
    if ucount and int(ucount) >= USERNAME_LIMIT:
        wait = max(wait, uttl if uttl and uttl > 0 else WINDOW)
    if acount and int(acount) >= ADDRESS_LIMIT:
        wait = max(wait, attl if attl and attl > 0 else WINDOW)
    return wait


async def record_failure(rt: Runtime, username: str, address: str | None) -> None:
    """Count one failed attempt against both the username and the address."""
    async with rt.redis.pipeline(transaction=True) as pipe:
        for key in (username_key(rt, username), address_key(rt, address)):
            pipe.set(key, 0, ex=WINDOW, nx=True)  # the window starts at the first failure (Redis 6.2 has no EXPIRE NX)
            pipe.incr(key)  # INCR keeps the TTL
        await pipe.execute()


async def clear_username(rt: Runtime, username: str) -> None:
    await rt.redis.delete(username_key(rt, username))
