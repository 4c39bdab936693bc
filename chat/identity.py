"""Identity tokens signed by the company's own site (docs/protocol.md): the only source of a plan.

token = b64url(payload) + "." + b64url(HMAC-SHA256(site_secret, b64url(payload)))
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Iterable

from chat.frames import MAX_EMAIL_CHARS, MAX_IDENTITY_CHARS, clean_line
from chat.config import Limits


class IdentityError(Exception):
    """The token is forged, expired, malformed or names an unknown plan."""


@dataclass(frozen=True)
class Identity:
    sub: str
    plan: str
    email: str = ""
    name: str = ""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, payload: dict[str, Any]) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    mac = hmac.new(secret.encode("utf-8"), body.encode("ascii"), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def verify(secret: str, token: Any, plans: Iterable[str], now: float,
           max_ttl: float = Limits.identity_max_ttl) -> Identity:
    """Check signature (in constant time), expiry and plan; return who the site vouches for.
    An exp more than max_ttl seconds ahead is refused too: a token copied from a page (or a
    site that mints them for a year) must not make anyone a verified customer for that long."""
    if not secret:
        raise IdentityError("this server has no site secret configured")
    if not isinstance(token, str) or token.count(".") != 1 or len(token) > MAX_IDENTITY_CHARS:
        raise IdentityError("malformed token")
    body, mac = token.split(".")
    expected = _b64(hmac.new(secret.encode("utf-8"), body.encode("ascii", "replace"), hashlib.sha256).digest())
    if not hmac.compare_digest(expected.encode("ascii"), mac.encode("ascii", "replace")):
        raise IdentityError("bad signature")
    try:
        payload = json.loads(_unb64(body).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise IdentityError("malformed payload") from None
    if not isinstance(payload, dict):
        raise IdentityError("malformed payload")
    exp = payload.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)) or exp <= now:
        raise IdentityError("expired or missing exp")
    if exp > now + max_ttl:
        raise IdentityError(f"exp is more than {int(max_ttl)} seconds ahead")
    plan = payload.get("plan")
    if plan not in set(plans):
        raise IdentityError("unknown plan")
    sub = payload.get("sub")
    if not isinstance(sub, (str, int)) or not str(sub):
        raise IdentityError("missing sub")
    email, name = payload.get("email", ""), payload.get("name", "")
    # The site vouches for who this is, not for what the text holds: a name reaches mail
    # headers and agents' screens, so it is one printable line like any visitor's own.
    return Identity(
        sub=str(sub)[:200],
        plan=plan,
        email=clean_line(email)[:MAX_EMAIL_CHARS] if isinstance(email, str) else "",
        name=clean_line(name)[:200] if isinstance(name, str) else "",
    )
