"""`livechat mail-in`: one mail from an MTA pipe into its ticket."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from chat.commands.access import RedisHandle, ensure_schema, load
from chat.store import redis_client


log = logging.getLogger("livechat")


EX_TEMPFAIL = 75  # sysexits.h: the MTA keeps the mail and tries again later

def cmd_mail_in(args: argparse.Namespace) -> int:
    """One RFC 5322 message on standard input into its ticket (for an MTA pipe). Exit 0 once
    it is stored (or was stored before, or is deliberately ignored), 75 when it cannot be
    stored now, so the MTA keeps it and retries: a mail is never lost."""
    from redis.exceptions import RedisError

    from chat.app import shared_secret
    from chat.runtime import Runtime
    from transcripts.intake import take

    raw = sys.stdin.buffer.read()
    if not raw.strip():
        print("livechat mail-in: no message on standard input", file=sys.stderr)
        return 65  # EX_DATAERR: nothing to retry
    settings, config = load(args)
    if len(raw) > config.mail_in.max_bytes:
        print(f"livechat mail-in: the mail is {len(raw)} bytes, over [mail_in] max_bytes ({config.mail_in.max_bytes})",
              file=sys.stderr)
        return 65  # EX_DATAERR: the MTA bounces it to its sender, as an SMTP 552 would

    async def run(url: str) -> int:
        redis = redis_client(url)
        try:
            rt = Runtime(settings=settings, config=config, redis=redis)
            rt.secret = await shared_secret(rt)
            taken = await take(rt, raw)
        finally:
            await redis.aclose()
        print(f"{taken.outcome} {taken.ref or taken.reason}".strip())
        return 0

    try:
        with RedisHandle(settings) as url:
            ensure_schema(url, config, attempts=1)
            return asyncio.run(run(url))
    except SystemExit as exc:  # Redis does not answer, or holds data of a newer release
        print(f"{exc.code}; mail-in: the MTA should retry", file=sys.stderr)
        return EX_TEMPFAIL
    except (RedisError, OSError, RuntimeError) as exc:
        print(f"livechat mail-in: cannot store the mail now ({type(exc).__name__}); the MTA should retry",
              file=sys.stderr)
        return EX_TEMPFAIL
