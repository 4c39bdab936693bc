"""Asking the company's own site which plan the sender of a mail is on.

The plan decides a ticket's response target, and only the site knows it: a mail proves no
identity. With `[tickets] plan_lookup_url` set, a new mail ticket whose sender has no
verified chat on record is looked up with one POST, signed like identity tokens with the key
the site already shares with the desk (LIVECHAT_SITE_SECRET), so the site can tell the
request is ours and fresh:

    POST plan_lookup_url
    Content-Type: application/json
    X-Livechat-Signature: sha256=<hex HMAC-SHA256(site_secret, body)>
    {"email": "ada@example.org", "ts": 1732300000}

and answers `{"plan": "professional"}` (or 404, or any other plan name: the lowest plan).
Any failure (timeout, error, unknown plan) means the lowest plan: a mail is never held up.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request

log = logging.getLogger("livechat.plan_lookup")

TIMEOUT = 3.0  # seconds: the intake answers the MTA while the lookup runs
MAX_ANSWER = 4096


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _ask(url: str, secret: str, email: str) -> str | None:
    body = json.dumps({"email": email, "ts": int(time.time())}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "X-Livechat-Signature": signature(secret, body),
        "User-Agent": "livechat-plan-lookup"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            answer = json.loads(response.read(MAX_ANSWER) or b"{}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("plan lookup failed (%s): the ticket gets the lowest plan", type(exc).__name__)
        return None
    plan = answer.get("plan") if isinstance(answer, dict) else None
    return plan if isinstance(plan, str) else None


async def plan_of(url: str, secret: str, email: str, plans: dict) -> str | None:
    """The plan the site names for this address, if it is one of the desk's plans."""
    if not url or not secret or not email:
        return None
    plan = await asyncio.to_thread(_ask, url, secret, email)
    return plan if plan in plans else None
