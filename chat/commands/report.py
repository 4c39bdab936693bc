"""`livechat report`: report figures for cron jobs, JSON or CSV."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chat.runtime import Runtime

log = logging.getLogger("livechat")


async def report(rt: "Runtime", args: argparse.Namespace) -> int:
    """`livechat report`: the figures of /api/reports on standard output, JSON or CSV (for cron)."""
    import json

    from chat import reports

    try:
        query = reports.parse_query(rt.config, args.start, args.end, args.group, args.interval,
                                    reports.today_in(rt.config, time.time()))
    except reports.ReportError as exc:
        print(f"livechat report: {exc.message}", file=sys.stderr)
        return 2
    result = await reports.build_report(rt.redis, rt.config, query)
    sys.stdout.write(reports.to_csv(result) if args.csv else json.dumps(result, indent=2) + "\n")
    return 0
