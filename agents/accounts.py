"""Agent and supervisor accounts in Redis, with argon2id password hashes."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis

from chat import keys

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
    """Create or update an account; a None password keeps the current one."""
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
    if password is not None:
        if len(password) < 8:
            raise ValueError("a password has at least 8 characters")
        fields["password"] = await asyncio.to_thread(_hasher.hash, password)
    elif not await redis.hexists(keys.account(username), "password"):
        raise ValueError("a new account needs a password")
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.account(username), mapping=fields)
        pipe.sadd(keys.ACCOUNTS, username)
        await pipe.execute()
    return account


def _from_hash(username: str, raw: dict[bytes, bytes]) -> Account:
    text = {k.decode(): v.decode() for k, v in raw.items()}
    return Account(
        username=username,
        name=text.get("name") or username,
        role=text.get("role", "agent"),
        langs=tuple(filter(None, text.get("langs", "en").split(","))),
        topics=tuple(filter(None, text.get("topics", "").split(","))),
        max_chats=int(text.get("max_chats", 3)),
    )


async def load_account(redis: Redis, username: str) -> Account | None:
    if not USERNAME.match(username or ""):
        return None
    raw = await redis.hgetall(keys.account(username))
    return _from_hash(username, raw) if raw else None


async def check_password(redis: Redis, username: str, password: str) -> Account | None:
    """The account if the password matches. An unknown user costs the same hashing time,
    so response time does not reveal which usernames exist."""
    raw = await redis.hgetall(keys.account(username)) if USERNAME.match(username or "") else {}
    stored = raw.get(b"password", b"").decode() or _DUMMY_HASH
    try:
        await asyncio.to_thread(_hasher.verify, stored, password)
    except (VerificationError, InvalidHashError):
        return None
    return _from_hash(username, raw) if raw else None
