"""`livechat worker`: the background duties, the mail listener and the IMAP poller, no sockets."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import TYPE_CHECKING

from chat.commands.access import RedisHandle, check_mail, ensure_schema, load
from chat.settings import Settings
from chat.store import redis_client

if TYPE_CHECKING:
    from transcripts.imap_in import ImapMailbox
    from transcripts.listener import ListenAddress

log = logging.getLogger("livechat")


def _mail_in_ways(settings: Settings) -> "tuple[ListenAddress | None, ImapMailbox | None]":
    """The listener address (LIVECHAT_MAIL_IN) and the mailbox (LIVECHAT_IMAP_URL) the worker
    takes mail from, either or both None; a wrong URL stops the worker at start-up."""
    from transcripts.imap_in import parse_imap_url
    from transcripts.listener import parse_listen_url

    try:
        listen = parse_listen_url(settings.mail_in_url) if settings.mail_in_url else None
    except ValueError as exc:
        raise SystemExit(f"livechat: LIVECHAT_MAIL_IN {exc}") from None
    try:
        mailbox = parse_imap_url(settings.imap_url) if settings.imap_url else None
    except ValueError as exc:
        raise SystemExit(f"livechat: LIVECHAT_IMAP_URL {exc}") from None
    return listen, mailbox

def cmd_worker(args: argparse.Namespace) -> int:
    from chat.app import shared_secret
    from chat.duties import Duties
    from chat.runtime import Runtime

    settings, config = load(args)
    check_mail(settings)
    listen, mailbox = _mail_in_ways(settings)

    async def run(redis_url: str) -> None:
        redis = redis_client(redis_url)
        rt = Runtime(settings=settings, config=config, redis=redis)
        rt.secret = await shared_secret(rt)
        duties = Duties(rt)  # a worker holds no sockets: no hub, no bus; what it changes it publishes
        duties.start()
        listener = poller = None
        if listen:
            from transcripts.listener import start_listener

            try:
                listener = await start_listener(rt, listen)
            except OSError as exc:
                raise SystemExit(f"livechat: LIVECHAT_MAIL_IN: cannot listen on {listen.describe()}: {exc.strerror or exc}") from None
        if mailbox:
            from transcripts.imap_in import ImapPoller

            poller = ImapPoller(rt, mailbox)
            poller.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("livechat worker running")
        await stop.wait()
        if listener:
            listener.close()
        if poller:
            await poller.stop()
        await duties.stop()
        await redis.aclose()

    with RedisHandle(settings) as redis_url:
        ensure_schema(redis_url, config)
        asyncio.run(run(redis_url))
    return 0
