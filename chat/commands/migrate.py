"""`livechat migrate [--dry-run]`: the pending schema migrations, run or shown."""

from __future__ import annotations

import argparse
import asyncio
import logging

from chat.commands.access import RedisHandle, load
from chat.store import redis_client


log = logging.getLogger("livechat")


def cmd_migrate(args: argparse.Namespace) -> int:
    """Run the pending migrations now (hubs and workers also run them when they start)."""
    from chat import schema

    settings, config = load(args)

    async def run(url: str) -> schema.Outcome:
        redis = redis_client(url)
        try:
            return await (schema.dry_run(redis, config) if args.dry_run else schema.ensure_current(redis, config))
        finally:
            await redis.aclose()

    with RedisHandle(settings) as url:
        try:
            outcome = asyncio.run(run(url))
        except schema.SchemaTooNew as exc:
            raise SystemExit(f"livechat: {exc}") from None
    if outcome.before is None:
        print(f"empty Redis: {'would be stamped' if args.dry_run else 'stamped'} with schema version {schema.CURRENT}")
        return 0
    if not outcome.applied:
        by_other = f" (migrated from {outcome.before} by another process)" if outcome.before != outcome.after else ""
        print(f"schema version {outcome.after}: up to date{by_other}")
        return 0
    verb = "would migrate" if args.dry_run else "migrated"
    print(f"schema version {outcome.before}: {verb} to {outcome.after}")
    for migration, changes in outcome.applied:
        print(f"  {migration.to}: {migration.summary}")
        for change in changes or ["nothing to move"]:
            print(f"     - {change}")
    return 0
