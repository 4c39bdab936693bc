"""`livechat transcript ...`: export a conversation, erase a visitor's data, look at the
outbox. The lead's chat/cli.py calls add_commands(subparsers) and awaits args.func(rt, args)."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from chat.runtime import Runtime
from transcripts import outbox
from transcripts.contact import is_mailable, normalize_email
from transcripts.delivery import maildir_path
from transcripts.erasure import erase_email
from transcripts.export import FORMATS, BadTarget, find_conversation, render_doc


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `transcript export|delete|outbox` to the livechat command."""
    parser = subparsers.add_parser("transcript", help="export or erase chat transcripts and tickets")
    sub = parser.add_subparsers(dest="transcript_command", metavar="{export,delete,outbox}", required=True)

    export = sub.add_parser("export", help="print (or write) one chat or ticket as text or JSON")
    export.add_argument("target", metavar="CHAT_ID|TICKET_REF", help="a chat id or a ticket reference such as LC-7K3F9Q")
    export.add_argument("--format", choices=FORMATS, default="txt")
    export.add_argument("--out", metavar="FILE",
                        help="write to this new file (under the current or the data folder) instead of stdout")
    export.set_defaults(func=export_command)

    delete = sub.add_parser("delete", help="erase every chat, ticket and queued mail of one email address")
    delete.add_argument("--email", required=True, metavar="ADDRESS")
    delete.set_defaults(func=delete_command)

    queue = sub.add_parser("outbox", help="list mail waiting to be delivered, with the last error")
    queue.set_defaults(func=outbox_command)


def _err(text: str) -> None:
    print(f"livechat transcript: {text}", file=sys.stderr)


def safe_output_path(out: str, data_dir: Path) -> Path:
    """The resolved path for --out, which must lie under the current folder or the data
    folder (so a mistyped or hostile path cannot write elsewhere); ValueError otherwise."""
    path = Path(out).expanduser()
    resolved = (Path.cwd() / path).resolve()
    roots = [Path.cwd().resolve(), Path(data_dir).resolve()]
    if not any(resolved == root or root in resolved.parents for root in roots):
        raise ValueError(f"--out {out!r} is outside the current folder and the data folder; "
                         "write it there or redirect standard output")
    return resolved


async def export_command(rt: Runtime, args: argparse.Namespace) -> int:
    try:
        doc = await find_conversation(rt.redis, args.target)
    except BadTarget as exc:
        _err(f"{args.target!r}: {exc}")
        return 2
    if doc is None:
        _err(f"no chat or ticket {args.target!r} (it may have been purged after the retention period)")
        return 1
    text = render_doc(doc, args.format)
    if not args.out:
        sys.stdout.write(text)
        return 0
    try:
        path = safe_output_path(args.out, rt.settings.data_dir)
        # New file only, readable by its owner only: a transcript is personal data.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _err(f"{args.out} already exists; choose another name")
        return 1
    except (ValueError, OSError) as exc:
        _err(str(exc))
        return 1
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {path}")
    return 0


async def delete_command(rt: Runtime, args: argparse.Namespace) -> int:
    email = normalize_email(args.email)
    if not is_mailable(email):
        _err(f"{args.email!r} is not an email address")
        return 2
    report = await erase_email(rt.redis, email, maildir_path(rt.settings))
    print(f"erasure for {email}:")
    print(f"  chats deleted:   {len(report.chats)}" + (f" ({', '.join(report.chats)})" if report.chats else ""))
    print(f"  tickets deleted: {len(report.tickets)}" + (f" ({', '.join(report.tickets)})" if report.tickets else ""))
    print(f"  queued mails deleted: {len(report.mails)}" + (f" ({', '.join(report.mails)})" if report.mails else ""))
    print(f"  mails deleted from the local Maildir: {report.mail_files}")
    if report.still_open:
        print(f"  still open, NOT deleted: {len(report.still_open)} ({', '.join(report.still_open)}); "
              "run this again once they are closed")
        return 1
    return 0


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


async def outbox_command(rt: Runtime, args: argparse.Namespace) -> int:
    mails = await outbox.queued(rt.redis)
    failed = await outbox.failed_mails(rt.redis)
    if not mails:
        print("the outbox is empty")
    for m in mails:
        error = f"  last error: {m['last_error']}" if m["last_error"] else ""
        print(f"{m['id']:<24} next attempt {_utc(m['due'])}  attempts {m['attempts']}{error}")
    if failed:
        print(f"failed for good, not retried ({len(failed)}):")
    for m in failed:
        print(f"{m['id']:<24} failed {_utc(m['due'])}  attempts {m['attempts']}  error: {m['last_error']}")
    return 0
