"""Login rate limiting ([limits] login_* in the desk configuration).

Every attempt is reserved in one Lua script *before* the password is checked, so concurrent
guesses cannot all pass a check made before any of them was counted:

- failures are counted per (username, client address) and per client address: past
  `login_failures_per_user_address` or `login_failures_per_address` in `login_window` seconds
  that address gets 429. Someone else's failures from elsewhere never lock an agent out;
- per username, from every address together, a slower back-off instead of a block: after
  `login_user_backoff_after` failures each further attempt waits `login_user_backoff`
  seconds after the previous one, doubling with each failure up to `login_user_backoff_max`;
- at most `login_verifications_per_user` and `login_verifications_per_address` password
  checks (argon2, deliberately costly) run at once; more get 429 at once.

A successful login clears its own (username, address) failures and gives back what its
reservation counted; the address counter is not cleared (one valid account must not reset
an attacker's budget). The address is never stored: keys hold an HMAC of it under the hubs'
shared secret, so Redis (and its backups) hold no IP addresses.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass

from chat import keys
from chat.runtime import Runtime

VERIFY_LEASE = 60  # seconds after which a password check still marked running (its hub died) stops counting

# KEYS: pair counter, address counter, username hash {n, last}, username checks, address checks
# ARGV: now, window, pair limit, address limit, backoff after, backoff, backoff max,
#       checks per user, checks per address, attempt id, lease
BEGIN_SCRIPT = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local function over(key, limit)
  local n = tonumber(redis.call('GET', key) or '0')
  if n < limit then return 0 end
  local ttl = redis.call('TTL', key)
  if ttl < 1 then return window end
  return ttl
end
local wait = over(KEYS[1], tonumber(ARGV[3]))
if wait > 0 then return {wait, 'failures'} end
wait = over(KEYS[2], tonumber(ARGV[4]))
if wait > 0 then return {wait, 'failures'} end
local n = tonumber(redis.call('HGET', KEYS[3], 'n') or '0')
local after = tonumber(ARGV[5])
if n >= after then
  local delay = math.min(tonumber(ARGV[6]) * 2 ^ (n - after), tonumber(ARGV[7]))
  local due = tonumber(redis.call('HGET', KEYS[3], 'last') or '0') + delay
  if now < due then return {math.ceil(due - now), 'backoff'} end
end
for i = 4, 5 do redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - tonumber(ARGV[11])) end
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[8]) or redis.call('ZCARD', KEYS[5]) >= tonumber(ARGV[9]) then
  return {1, 'busy'}
end
for i = 1, 2 do
  redis.call('SET', KEYS[i], 0, 'EX', window, 'NX')
  redis.call('INCR', KEYS[i])
end
redis.call('HINCRBY', KEYS[3], 'n', 1)
redis.call('HSET', KEYS[3], 'last', ARGV[1])
redis.call('EXPIRE', KEYS[3], window)
for i = 4, 5 do
  redis.call('ZADD', KEYS[i], now, ARGV[10])
  redis.call('EXPIRE', KEYS[i], ARGV[11])
end
return {0, ''}
"""

# KEYS: as BEGIN_SCRIPT; ARGV: attempt id, '1' if the password was right
END_SCRIPT = """
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1])
  if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
  if tonumber(redis.call('HGET', KEYS[3], 'n') or '0') > 0 then redis.call('HINCRBY', KEYS[3], 'n', -1) end
end
return 1
"""


@dataclass(frozen=True)
class Attempt:
    """A reserved login attempt: refused (wait > 0 seconds, and why) or to be ended with `end`."""

    keys: list[str]
    id: str
    wait: int = 0
    reason: str = ""


def _script(rt: Runtime, text: str):
    """The script for this Redis client (registering computes its SHA locally: no round
    trip; the script is loaded on its first use and kept by Redis)."""
    return rt.redis.register_script(text)


def _digest(rt: Runtime, kind: str, value: str) -> str:
    return hmac.new(rt.secret, f"{kind}:{value}".encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:32]


def _keys(rt: Runtime, username: str, address: str | None) -> list[str]:
    user = _digest(rt, "user", username.strip().lower()[:64])
    addr = _digest(rt, "addr", address or "unknown")
    return [keys.login_attempts(f"p:{user}:{addr}"), keys.login_attempts(f"a:{addr}"),
            keys.login_attempts(f"u:{user}"), keys.login_attempts(f"busy:u:{user}"),
            keys.login_attempts(f"busy:a:{addr}")]


async def begin(rt: Runtime, username: str, address: str | None) -> Attempt:
    """Reserve one attempt before the password is checked: counted as a failure until `end`
    says it succeeded. A refused attempt (wait > 0) counts nothing and needs no `end`."""
    limits = rt.config.limits
    attempt = Attempt(_keys(rt, username, address), secrets.token_hex(8))
    script = _script(rt, BEGIN_SCRIPT)
    wait, reason = await script(keys=attempt.keys, args=[
        repr(rt.clock()), limits.login_window, limits.login_failures_per_user_address, limits.login_failures_per_address,
        limits.login_user_backoff_after, limits.login_user_backoff, limits.login_user_backoff_max,
        limits.login_verifications_per_user, limits.login_verifications_per_address, attempt.id, VERIFY_LEASE,
    ])
    if int(wait) > 0:
        return Attempt(attempt.keys, attempt.id, max(1, math.ceil(int(wait))), reason.decode())
    return attempt


async def end(rt: Runtime, attempt: Attempt, succeeded: bool) -> None:
    """The password check is over: free its slot; a success gives back what it counted."""
    script = _script(rt, END_SCRIPT)
    await script(keys=attempt.keys, args=[attempt.id, "1" if succeeded else "0"])
