"""Agent and supervisor accounts in Redis, with argon2id password hashes."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import msgpack
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis

from chat import frames, keys
from chat.store import publish as bus_publish

ROLES = ("agent", "supervisor")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
_hasher = PasswordHasher()  # argon2id with the library's RFC 9106 low-memory profile
_DUMMY_HASH = _hasher.hash("not a password")


@dataclass(frozen=True)
class Account:
    username: str
    name: str
    role: str = "agent"
    langs: tuple[str, ...] = ("en",)
    topics: tuple[str, ...] = ()  # empty: every topic
    max_chats: int = 3
    disabled: bool = False  # `livechat agent disable`: cannot sign in, has no sessions

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"

    def profile(self) -> dict:
        return {
            "username": self.username,
            "name": self.name,
            "role": self.role,
            "langs": list(self.langs),
            "topics": list(self.topics),
            "max_chats": self.max_chats,
        }


def check_username(username: str) -> str:
    if not USERNAME.match(username or ""):
        raise ValueError("a username is 1-32 of a-z, 0-9, '.', '_' or '-', starting with a letter or digit")
    return username


async def save_account(
    redis: Redis,
    username: str,
    password: str | None,
    *,
    role: str = "agent",
    name: str | None = None,
    langs: tuple[str, ...] | list[str] = ("en",),
    topics: tuple[str, ...] | list[str] = (),
    max_chats: int = 3,
) -> Account:
    """Create or update an account; a None password keeps the current one. A new role or a new
    password ends every session of the user: a demoted supervisor's cookie must not keep
    supervisor rights, nor a stolen cookie outlive the password change meant to stop it."""
    check_username(username)
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not 1 <= int(max_chats) <= 50:
        raise ValueError("max_chats must be from 1 to 50")
    account = Account(
        username=username,
        name=name or username.capitalize(),
        role=role,
        langs=tuple(l.strip().lower() for l in langs if l.strip()) or ("en",),
        topics=tuple(t.strip().lower() for t in topics if t.strip()),
        max_chats=int(max_chats),
    )
    fields = {
        "name": account.name,
        "role": account.role,
        "langs": ",".join(account.langs),
        "topics": ",".join(account.topics),
        "max_chats": account.max_chats,
    }
    old_role, old_hash = await redis.hmget(keys.account(username), "role", "password")
    if password is not None:
        if len(password) < 8:
            raise ValueError("a password has at least 8 characters")
        fields["password"] = await asyncio.to_thread(_hasher.hash, password)
    elif not old_hash:
        raise ValueError("a new account needs a password")
    changed = old_role is not None and old_role.decode() != account.role
    if password is not None and old_hash and not changed:
        changed = not await asyncio.to_thread(_matches, old_hash.decode(), password)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.account(username), mapping=fields)
        pipe.sadd(keys.ACCOUNTS, username)
        await pipe.execute()
    if changed:
        await end_sessions(redis, username)
    return account


def _matches(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def end_sessions(redis: Redis, username: str) -> None:
    """Delete every session of the user and tell the hubs, whose sockets of that user (agent
    desks, supervisor views) close at once rather than at their next session check."""
    members = await redis.smembers(keys.user_sessions(username))
    async with redis.pipeline(transaction=True) as pipe:
        for session_id in members:
            pipe.delete(keys.session(session_id.decode()))
        pipe.delete(keys.user_sessions(username))
        await pipe.execute()
    # After the transaction: the agent's channel is in the routing slot {q}, not {a}. A crash
    # in between leaves the sessions deleted (every later request and reconnect is refused)
    # and only the sockets open at that instant unwarned.
    await bus_publish(redis, keys.agent_channel(username), msgpack.packb({"type": frames.EVENT_REVOKED}))


async def set_disabled(redis: Redis, username: str, disabled: bool) -> bool:
    """`livechat agent disable` / `enable`: a disabled account cannot sign in and loses its
    sessions and sockets at once; its routing profile goes offline so that no chat is given
    to it meanwhile (the chats it held return to the queue after the agent grace period).
    False if there is no such account."""
    if not await redis.exists(keys.account(username)):
        return False
    if disabled:
        await redis.hset(keys.account(username), "disabled", "1")
        await _routing_offline(redis, username)
        await end_sessions(redis, username)
    else:
        await redis.hdel(keys.account(username), "disabled")
    return True


async def remove_account(redis: Redis, username: str) -> bool:
    """`livechat agent remove`: the account, its sessions and its routing profile are gone;
    its open sockets close at once. False if there is no such account."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(keys.account(username))
        pipe.srem(keys.ACCOUNTS, username)
        pipe.hdel(keys.AGENTS, username)
        found, _, _ = await pipe.execute()
    from chat.queue import agents_changed

    await agents_changed(redis)
    if found:
        await end_sessions(redis, username)
    return bool(found)


async def _routing_offline(redis: Redis, username: str) -> None:
    from chat.queue import read_agents, write_agent

    profile = (await read_agents(redis)).get(username)
    if profile is not None:
        await write_agent(redis, username, {**profile, "status": frames.AGENT_OFFLINE})


def _from_hash(username: str, raw: dict[bytes, bytes]) -> Account:
    text = {k.decode(): v.decode() for k, v in raw.items()}
    return Account(
        username=username,
        name=text.get("name") or username,
        role=text.get("role", "agent"),
        langs=tuple(filter(None, text.get("langs", "en").split(","))),
        topics=tuple(filter(None, text.get("topics", "").split(","))),
        max_chats=int(text.get("max_chats", 3)),
        disabled=text.get("disabled") == "1",
    )


async def load_account(redis: Redis, username: str) -> Account | None:
    if not USERNAME.match(username or ""):
        return None
    raw = await redis.hgetall(keys.account(username))
    return _from_hash(username, raw) if raw else None


async def list_accounts(redis: Redis) -> list[Account]:
    """Every account, sorted by username: who a ticket may be assigned to, signed in or not."""
    names = sorted(m.decode() for m in await redis.smembers(keys.ACCOUNTS))
    if not names:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.account(name))
        raws = await pipe.execute()
    return [_from_hash(name, raw) for name, raw in zip(names, raws) if raw]


async def check_password(redis: Redis, username: str, password: str) -> Account | None:
    """The account if the password matches and the account is not disabled. An unknown user
    costs the same hashing time, so response time does not reveal which usernames exist."""
    raw = await redis.hgetall(keys.account(username)) if USERNAME.match(username or "") else {}
    stored = raw.get(b"password", b"").decode() or _DUMMY_HASH
    if not await asyncio.to_thread(_matches, stored, password):
        return None
    account = _from_hash(username, raw) if raw else None
    return account if account and not account.disabled else None
