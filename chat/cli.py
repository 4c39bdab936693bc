"""The `livechat` command: its parser; each subcommand lives in chat/commands/."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from chat.commands.access import run_with_runtime
from chat.commands.accounts import cmd_agent_add, cmd_agent_end
from chat.commands.mail_in import cmd_mail_in
from chat.commands.migrate import cmd_migrate
from chat.commands.report import report
from chat.commands.serve import cmd_serve
from chat.commands.token import cmd_token
from chat.commands.worker import cmd_worker


def _workers(value: str) -> int:
    """`--workers` (or LIVECHAT_WORKERS; argparse converts a string default too): one hub
    process uses one core, so the default is one per core."""
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"workers must be a whole number of at least 1, not {value!r}")
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livechat", description="Self-hosted live-chat support server")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the hub (HTTP and WebSockets)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
    serve.add_argument("--demo", action="store_true", help="demo site at /, demo accounts, every plan open 24/7")
    serve.add_argument("--workers", type=_workers, default=os.environ.get("LIVECHAT_WORKERS") or str(os.cpu_count() or 1),
                       help="hub processes sharing the port (default: LIVECHAT_WORKERS, else one per core); "
                            "--demo always runs one")
    serve.set_defaults(run=cmd_serve)

    worker = sub.add_parser("worker", help="background duties: timers, mail outbox, retention")
    worker.set_defaults(run=cmd_worker)

    agent = sub.add_parser("agent", help="agent accounts").add_subparsers(dest="agent_command", required=True)
    add = agent.add_parser("add", help="create or update an account; the password is read from standard input")
    add.add_argument("username")
    add.add_argument("--role", choices=("agent", "supervisor"), default="agent")
    add.add_argument("--name", default=None, help="the name visitors see")
    add.add_argument("--langs", default="en")
    add.add_argument("--topics", default="")
    add.add_argument("--max-chats", type=int, default=3)
    add.set_defaults(run=cmd_agent_add)
    for name, text in (("remove", "delete an account; its sessions and open sockets end at once"),
                       ("disable", "stop an account from signing in; its sessions and open sockets end at once"),
                       ("enable", "let a disabled account sign in again")):
        end = agent.add_parser(name, help=text)
        end.add_argument("username")
        end.set_defaults(run=cmd_agent_end)

    mail_in = sub.add_parser("mail-in", help="store one mail read from standard input in its ticket (an MTA pipe)")
    mail_in.set_defaults(run=cmd_mail_in)

    migrate = sub.add_parser("migrate", help="bring the data in Redis to this release's layout")
    migrate.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    migrate.set_defaults(run=cmd_migrate)

    rep = sub.add_parser("report", help="figures over time (waits, replies, targets, CSAT) as JSON or CSV")
    rep.add_argument("--from", dest="start", help="first day, YYYY-MM-DD in [reports] tz (default: 6 days before --to)")
    rep.add_argument("--to", dest="end", help="last day, YYYY-MM-DD (default: today)")
    rep.add_argument("--group", choices=("plan", "lang", "topic", "channel", "agent"), default=None)
    rep.add_argument("--interval", choices=("hour", "day", "week", "month"), default="day")
    rep.add_argument("--csv", action="store_true", help="CSV, one line per interval x group")
    rep.set_defaults(func=report)

    token = sub.add_parser("token", help="print an identity token signed with the site secret")
    token.add_argument("--sub", required=True)
    token.add_argument("--plan", required=True)
    token.add_argument("--email")
    token.add_argument("--name")
    token.add_argument("--ttl", type=int, default=3600)
    token.set_defaults(run=cmd_token)

    try:
        from transcripts.cli import add_commands
    except ImportError:
        add_commands = None
    if add_commands:
        add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from chat import log_privacy

    log_privacy.install()  # before anything logs: no client address in any line (docs/security.md)
    logging.basicConfig(level=os.environ.get("LIVECHAT_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return (getattr(args, "run", None) or run_with_runtime)(args)


if __name__ == "__main__":
    sys.exit(main())
