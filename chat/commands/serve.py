"""`livechat serve`: the hub (uvicorn), with the demo's accounts and site under `--demo`; with
`--workers N`, N hub processes on one port (chat/prefork.py; the demo stays one process)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
from typing import Callable

from chat import frames, log_privacy
from chat.commands.access import RedisHandle, check_mail, ensure_schema, load
from chat.config import DeskConfig
from chat.rlimits import raise_open_files
from chat.settings import Settings
from chat.store import redis_client


log = logging.getLogger("livechat")


DEMO_AGENT = "agent"

DEMO_SUPERVISOR = "supervisor"

def _server_class(on_started: Callable[[], None] | None = None):
    import contextlib
    import threading

    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, which would kill the
        process before the embedded Redis is stopped; this variant just returns. A worker
        of `--workers` tells its parent once it serves (on_started)."""

        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                _quiet_per_socket_lines(True)
                tune_gc()
            if self.started and on_started is not None:
                on_started()

        async def shutdown(self, sockets=None) -> None:
            _quiet_per_socket_lines(False)  # "Shutting down", "Waiting for connections to close"
            await super().shutdown(sockets=sockets)

    return Server

# The cyclic garbage collector's thresholds while serving (gc.set_threshold): a young
# generation of 50,000 objects instead of Python's 700, and 20 young collections per middle
# one instead of 10; the oldest generation keeps Python's rule.
GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    """Once the hub serves: what start-up built (modules, config, templates) is frozen out of
    the collector's reach, and young collections run far less often. With Python's defaults
    a hub accepting visitors spent about a third of its CPU in the collector (a young
    collection every 700 allocations, and full ones re-walking every open socket's objects
    as their number grew): ~0.4 ms of a ~1.5 ms `hello`. Nearly everything a hello or a
    frame allocates is freed by reference counting long before 50,000 allocations, so
    collections become rare and short; cycles are still collected, a little later."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _quiet_per_socket_lines(quiet: bool) -> None:
    """uvicorn logs every WebSocket's "[accepted]", "connection open" and "connection closed"
    at info level on its "uvicorn.error" logger, whatever access_log says: three scrubbed log
    records per visitor, a tenth of the CPU a hello costs, and a log line per socket that
    nobody reads at info level. While serving, that logger keeps warnings and errors only;
    its start-up and shutdown lines stay, and LIVECHAT_LOG_LEVEL=debug keeps every line."""
    uvicorn_log = logging.getLogger("uvicorn.error")
    if quiet and uvicorn_log.getEffectiveLevel() == logging.INFO:
        uvicorn_log.setLevel(logging.WARNING)
    elif not quiet and uvicorn_log.level == logging.WARNING:
        uvicorn_log.setLevel(logging.INFO)


def _demo_setup(settings: Settings, redis_url: str) -> Settings:
    """Demo accounts (credentials kept under the data folder and printed) and a site secret."""
    from dataclasses import replace

    from agents.accounts import save_account

    creds_file = settings.data_dir / "demo-credentials.txt"
    if creds_file.exists():
        lines = dict(line.split("=", 1) for line in creds_file.read_text().split() if "=" in line)
    else:
        lines = {"agent": secrets.token_urlsafe(9), "supervisor": secrets.token_urlsafe(9),
                 "site_secret": secrets.token_urlsafe(24)}
        creds_file.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        creds_file.chmod(0o600)

    async def accounts() -> None:
        redis = redis_client(redis_url)
        try:
            await save_account(redis, DEMO_AGENT, lines["agent"], name="Sam", langs=["en", "fr"], max_chats=4)
            await save_account(redis, DEMO_SUPERVISOR, lines["supervisor"], role="supervisor", name="Alex",
                               langs=["en", "fr"], max_chats=4)
        finally:
            await redis.aclose()

    asyncio.run(accounts())
    from helpcentre.library import install_demo_articles

    install_demo_articles(settings.help_folder)
    return replace(settings, site_secret=settings.site_secret or lines["site_secret"]), lines

def cmd_serve(args: argparse.Namespace) -> int:
    from chat.app import create_app

    settings, config = load(args, demo=args.demo)
    check_mail(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    open_files = raise_open_files()
    if open_files < 4096:
        log.warning("the open-files limit is %d: at most about that many sockets (raise `ulimit -Hn`)", open_files)
    if not settings.site_secret and not args.demo:
        log.warning("LIVECHAT_SITE_SECRET is not set: identity tokens cannot be verified; every visitor is on the lowest plan")
    with RedisHandle(settings) as redis_url:
        ensure_schema(redis_url, config)
        if args.demo:
            settings, creds = _demo_setup(settings, redis_url)
            base = f"http://{args.host}:{args.port}"
            # Mails link to the customer's private ticket page: on the demo, at this address.
            from dataclasses import replace

            settings = replace(settings, public_url=settings.public_url or base)
            print(
                f"\n  livechat demo is running\n"
                f"  Demo site with the widget:  {base}/\n"
                f"  Agent dashboard:            {base}/agent/login   user: {DEMO_AGENT}       password: {creds['agent']}\n"
                f"  Supervisor view:            {base}/agent/login   user: {DEMO_SUPERVISOR}  password: {creds['supervisor']}\n"
                f"  Mail (tickets) is written to {settings.data_dir / 'mail'}/ (no SMTP_URL set)\n",
                flush=True,
            )
        workers = 1 if args.demo else args.workers
        if workers <= 1:
            app = create_app(settings, config, redis_url, demo=args.demo)
            server_config = _uvicorn_config(app, args, config)
            log_privacy.drop_wire_traces()  # uvicorn's Config has set up its loggers by now
            _server_class()(server_config).run()
            return 0
        from chat import prefork

        prefork.check_port_free(args.host, args.port)
        log.info("livechat serve: %d workers on http://%s:%d (SO_REUSEPORT)", workers, args.host, args.port)

        def worker(index: int, ready: Callable[[], None]) -> int:
            sockets = prefork.shared_sockets(args.host, args.port)
            app = create_app(settings, config, redis_url)
            server_config = _uvicorn_config(app, args, config)
            log_privacy.drop_wire_traces()
            log.info("worker %d (pid %d) starting", index, os.getpid())
            _server_class(on_started=ready)(server_config).run(sockets=sockets)
            return 0

        return prefork.Supervisor(workers, worker).run()


def _uvicorn_config(app, args: argparse.Namespace, config: DeskConfig):
    """The one uvicorn configuration of every hub process (a single `serve` or a worker)."""
    import uvicorn

    from chat.http_guard import guarded_http_protocol
    from chat.ws_protocol import LeanWebSocketProtocol

    return uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        ws=LeanWebSocketProtocol,  # our RFC 6455 protocol, handed the request by the HTTP protocol below
        ws_max_size=frames.MAX_FRAME_BYTES,
        ws_per_message_deflate=False,
        ws_ping_interval=config.timing.ping_interval or None,
        ws_ping_timeout=config.timing.ping_timeout,
        loop="auto",
        http=guarded_http_protocol(config.timing.header_timeout),  # request-head deadline, capped upgrades
        limit_concurrency=config.limits.max_connections or None,
        lifespan="on",
        proxy_headers=True,
        timeout_graceful_shutdown=5,
        log_level=os.environ.get("LIVECHAT_LOG_LEVEL", "info").lower(),
        access_log=False,
        backlog=4096,
    )
