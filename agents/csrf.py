"""Cross-site request forgery guards for the agent pages.

Login (no session yet) uses a double-submit token: GET /agent/login sets a short-lived,
signed, random ``lc_csrf`` cookie (HttpOnly, SameSite=Strict) and embeds the same value in
a hidden form field; the POST must carry both, equal. A forged cross-site post cannot read
the field nor, with SameSite=Strict, make the browser send the cookie.

Every form post made with a session (logout) and every state-changing API call (canned
replies) carries the session's own token (agents.sessions.Session.csrf) as a form field or
an ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import hmac
import secrets

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from starlette.requests import HTTPConnection

from chat.runtime import Runtime

LOGIN_COOKIE = "lc_csrf"
FIELD = "csrf"
HEADER = "x-csrf-token"
LOGIN_TOKEN_TTL = 3600  # seconds a login form stays usable


def _signer(rt: Runtime) -> TimestampSigner:
    return TimestampSigner(rt.secret, salt="livechat.login-csrf")


def new_login_token(rt: Runtime) -> str:
    """A fresh random token for one login form, signed so that only this desk's hubs made it."""
    return _signer(rt).sign(secrets.token_urlsafe(18)).decode()


def login_token_ok(rt: Runtime, cookie: str | None, field: str | None) -> bool:
    """True when the cookie and the form field are present, equal, ours, and not stale."""
    if not cookie or not field or not hmac.compare_digest(cookie.encode(), field.encode()):
        return False
    try:
        _signer(rt).unsign(cookie, max_age=LOGIN_TOKEN_TTL)
    except (BadSignature, SignatureExpired):
        return False
    return True


def session_token_ok(expected: str, given: str | None) -> bool:
    """Constant-time check of a session's CSRF token."""
    return bool(given) and hmac.compare_digest(expected.encode(), given.encode())


def is_bare_client(conn: HTTPConnection) -> bool:
    """A request that no browser would send: no Origin, no Referer and no cookie at all.

    Browsers attach Origin to every cross-origin POST and (Chromium, Firefox, Safari) to
    same-origin form POSTs as well, so a forged login post from another site always carries
    one. Scripts and benchmarks written from docs/protocol.md ("form fields username, password")
    send none of the three; for them the double-submit pair is not required. They still pass
    the login rate limit, and a login without the pair cannot be aimed at a victim's
    browser, which is all that login CSRF is about."""
    headers = conn.headers
    return "origin" not in headers and "referer" not in headers and "cookie" not in headers
