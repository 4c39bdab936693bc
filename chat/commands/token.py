"""`livechat token`: an identity token signed like the customer's site signs them, for testing."""

from __future__ import annotations

import argparse
import logging
import time

from chat.commands.access import load

log = logging.getLogger("livechat")


def cmd_token(args: argparse.Namespace) -> int:
    from chat.identity import sign

    settings, config = load(args)
    if not settings.site_secret:
        raise SystemExit("livechat: set LIVECHAT_SITE_SECRET (the key your site signs identity tokens with)")
    if args.plan not in config.plans:
        raise SystemExit(f"livechat: unknown plan {args.plan!r}; plans: {', '.join(config.plans)}")
    max_ttl = config.limits.identity_max_ttl
    if not 0 < args.ttl <= max_ttl:
        raise SystemExit(f"livechat: --ttl must be from 1 to {max_ttl} seconds ([limits] identity_max_ttl): "
                         "the hub refuses a token that lives longer")
    payload = {"sub": args.sub, "plan": args.plan, "exp": int(time.time()) + args.ttl}
    if args.email:
        payload["email"] = args.email
    if args.name:
        payload["name"] = args.name
    print(sign(settings.site_secret, payload))
    return 0
