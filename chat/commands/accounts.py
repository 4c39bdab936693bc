"""`livechat agent add|remove|disable|enable`: agent and supervisor accounts."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys

from chat.commands.access import RedisHandle, ensure_schema, load
from chat.store import redis_client


log = logging.getLogger("livechat")


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise SystemExit("livechat: the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")

def cmd_agent_add(args: argparse.Namespace) -> int:
    from agents.accounts import save_account

    settings, config = load(args)
    password = _read_password()

    async def run(url: str) -> None:
        redis = redis_client(url)
        try:
            account = await save_account(
                redis, args.username, password or None, role=args.role, name=args.name,
                langs=args.langs.split(","), topics=[t for t in args.topics.split(",") if t],
                max_chats=args.max_chats,
            )
        finally:
            await redis.aclose()
        print(f"{account.role} {account.username} saved (langs {','.join(account.langs)}, "
              f"topics {','.join(account.topics) or 'all'}, max {account.max_chats} chats)")

    with RedisHandle(settings) as url:
        ensure_schema(url, config)
        try:
            asyncio.run(run(url))
        except ValueError as exc:
            raise SystemExit(f"livechat: {exc}") from None
    return 0

def cmd_agent_end(args: argparse.Namespace) -> int:
    """`agent remove`, `agent disable`, `agent enable`: the account's sessions and sockets end
    at once (every hub closes that user's sockets when told so over pub/sub)."""
    from agents.accounts import remove_account, set_disabled

    settings, _ = load(args)
    action = args.agent_command

    async def run(url: str) -> bool:
        redis = redis_client(url)
        try:
            if action == "remove":
                return await remove_account(redis, args.username)
            return await set_disabled(redis, args.username, action == "disable")
        finally:
            await redis.aclose()

    with RedisHandle(settings) as url:
        if not asyncio.run(run(url)):
            raise SystemExit(f"livechat: no account named {args.username!r}")
    print(f"{args.username} {dict(remove='removed', disable='disabled', enable='enabled')[action]}")
    return 0
