"""Logged-in sessions: a random id kept in Redis (so logout and expiry are real), sent to the
browser in a signed, HttpOnly, SameSite=Strict cookie."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Mapping

from itsdangerous import BadSignature, TimestampSigner

from agents.accounts import Account
from chat import keys
from chat.runtime import Runtime

COOKIE = "lc_session"


@dataclass(frozen=True)
class Session:
    id: str
    username: str
    role: str
    csrf: str

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"


def _signer(rt: Runtime) -> TimestampSigner:
    return TimestampSigner(rt.secret, salt="livechat.session")


async def open_session(rt: Runtime, account: Account) -> tuple[str, Session]:
    """Store a new session, listed under its user (agents.accounts.end_sessions ends them all);
    return the cookie value and the session."""
    session = Session(secrets.token_urlsafe(24), account.username, account.role, secrets.token_urlsafe(24))
    key = keys.session(session.id)
    async with rt.redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping={"username": session.username, "role": session.role, "csrf": session.csrf})
        pipe.expire(key, rt.settings.session_ttl)
        pipe.sadd(keys.user_sessions(session.username), session.id)
        pipe.expire(keys.user_sessions(session.username), rt.settings.session_ttl)
        await pipe.execute()
    return _signer(rt).sign(session.id).decode(), session


async def read_session(rt: Runtime, cookies: Mapping[str, str]) -> Session | None:
    """The live session named by the request's cookie, or None (missing, forged, expired,
    ended, or its account removed or disabled). The role is the account's, read now: the one
    stored at login would keep a demoted supervisor's rights for the session's lifetime."""
    value = cookies.get(COOKIE)
    if not value:
        return None
    try:
        session_id = _signer(rt).unsign(value, max_age=rt.settings.session_ttl).decode()
    except (BadSignature, UnicodeDecodeError):
        return None
    raw = await rt.redis.hgetall(keys.session(session_id))
    if not raw:
        return None
    text = {k.decode(): v.decode() for k, v in raw.items()}
    role, disabled = await rt.redis.hmget(keys.account(text["username"]), "role", "disabled")
    if role is None or disabled == b"1":
        return None
    return Session(session_id, text["username"], role.decode(), text["csrf"])


async def close_session(rt: Runtime, session: Session) -> None:
    async with rt.redis.pipeline(transaction=True) as pipe:
        pipe.delete(keys.session(session.id))
        pipe.srem(keys.user_sessions(session.username), session.id)
        await pipe.execute()
