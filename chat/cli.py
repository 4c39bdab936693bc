"""The `livechat` command: serve, worker, agent accounts, identity tokens, transcripts."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import secrets
import signal
import sys
import time
from typing import TYPE_CHECKING


from chat.config import ConfigError, DeskConfig, load_config
from chat.rlimits import raise_open_files
from chat.embedded_redis import EmbeddedRedis
from chat.settings import Settings, load_settings
from chat.store import redis_client

if TYPE_CHECKING:
    from chat.runtime import Runtime
    from transcripts.imap_in import ImapMailbox
    from transcripts.listener import ListenAddress

log = logging.getLogger("livechat")

DEMO_AGENT = "agent"
DEMO_SUPERVISOR = "supervisor"


class RedisHandle:
    """REDIS_URL if set; otherwise the embedded server (reused if one already answers on
    the data folder's socket, started and later stopped if not)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.embedded: EmbeddedRedis | None = None

    def __enter__(self) -> str:
        if self.settings.redis_url:
            return self.settings.redis_url
        embedded = EmbeddedRedis(self.settings.data_dir, fsync=self.settings.redis_fsync)
        if embedded.socket_path.exists():
            import redis

            try:
                client = redis.Redis.from_url(embedded.url, socket_connect_timeout=1)
                client.ping()
                client.close()
                return embedded.url
            except (redis.ConnectionError, OSError):
                embedded.socket_path.unlink(missing_ok=True)
        embedded.start()
        self.embedded = embedded
        return embedded.url

    def __exit__(self, *exc) -> None:
        if self.embedded:
            self.embedded.stop()


def _load(args: argparse.Namespace, demo: bool = False):
    settings = load_settings()
    try:
        config = load_config(settings.config_path, demo=demo)
    except ConfigError as exc:
        raise SystemExit(f"livechat: configuration error in {exc}") from None
    return settings, config


def _ensure_schema(redis_url: str, config: DeskConfig, attempts: int = 30) -> None:
    """Bring the data in Redis to this release's layout before anything reads it (migrating
    an older layout under a lock; see chat/schema.py), or refuse data of a newer release."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from chat import schema

    async def run() -> schema.Outcome:
        redis = redis_client(redis_url)
        try:
            for attempt in range(attempts):  # Redis may be starting beside us (Procfile, systemd)
                try:
                    return await schema.ensure_current(redis, config)
                except (RedisConnectionError, OSError) as exc:
                    if attempt == attempts - 1:
                        raise SystemExit(f"livechat: Redis does not answer ({type(exc).__name__}: {exc})") from None
                    log.warning("Redis does not answer yet (%s); trying again", type(exc).__name__)
                    await asyncio.sleep(1)
            raise AssertionError("unreachable")
        finally:
            await redis.aclose()

    try:
        asyncio.run(run())
    except schema.SchemaTooNew as exc:
        raise SystemExit(f"livechat: {exc}") from None


def _check_mail(settings: Settings) -> None:
    """Refuse to start with an unusable SMTP_URL rather than queue mail nobody will send."""
    from transcripts.delivery import backend_for

    try:
        backend_for(settings)
    except ValueError as exc:
        raise SystemExit(f"livechat: SMTP_URL: {exc}") from None


# --- serve ---------------------------------------------------------------------------


def _server_class():
    import contextlib
    import threading

    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, which would kill the
        process before the embedded Redis is stopped; this variant just returns."""

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

    return Server


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
    import uvicorn

    from chat.app import create_app
    from chat.http_guard import guarded_http_protocol

    settings, config = _load(args, demo=args.demo)
    _check_mail(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    open_files = raise_open_files()
    if open_files < 4096:
        log.warning("the open-files limit is %d: at most about that many sockets (raise `ulimit -Hn`)", open_files)
    if not settings.site_secret and not args.demo:
        log.warning("LIVECHAT_SITE_SECRET is not set: identity tokens cannot be verified; every visitor is on the lowest plan")
    with RedisHandle(settings) as redis_url:
        _ensure_schema(redis_url, config)
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
        app = create_app(settings, config, redis_url, demo=args.demo)
        server_config = uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            ws="websockets-sansio",
            ws_max_size=65536,
            ws_per_message_deflate=False,
            ws_ping_interval=20.0,
            ws_ping_timeout=20.0,
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
        _server_class()(server_config).run()
    return 0


# --- worker ---------------------------------------------------------------------------


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

    settings, config = _load(args)
    _check_mail(settings)
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
        _ensure_schema(redis_url, config)
        asyncio.run(run(redis_url))
    return 0


# --- agent accounts -------------------------------------------------------------------


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise SystemExit("livechat: the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_agent_add(args: argparse.Namespace) -> int:
    from agents.accounts import save_account

    settings, config = _load(args)
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
        _ensure_schema(url, config)
        try:
            asyncio.run(run(url))
        except ValueError as exc:
            raise SystemExit(f"livechat: {exc}") from None
    return 0


def cmd_agent_end(args: argparse.Namespace) -> int:
    """`agent remove`, `agent disable`, `agent enable`: the account's sessions and sockets end
    at once (every hub closes that user's sockets when told so over pub/sub)."""
    from agents.accounts import remove_account, set_disabled

    settings, _ = _load(args)
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


def cmd_token(args: argparse.Namespace) -> int:
    from chat.identity import sign

    settings, config = _load(args)
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


def cmd_async(args: argparse.Namespace) -> int:
    """Run a subcommand that needs a Runtime (the transcript commands)."""
    from chat.runtime import Runtime

    settings, config = _load(args)

    async def run(url: str) -> int:
        redis = redis_client(url)
        try:
            rt = Runtime(settings=settings, config=config, redis=redis)
            from chat.app import shared_secret

            rt.secret = await shared_secret(rt)
            return int(await args.func(rt, args) or 0)
        finally:
            await redis.aclose()

    with RedisHandle(settings) as url:
        _ensure_schema(url, config)
        return asyncio.run(run(url))


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
    settings, config = _load(args)
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
            _ensure_schema(url, config, attempts=1)
            return asyncio.run(run(url))
    except SystemExit as exc:  # Redis does not answer, or holds data of a newer release
        print(f"{exc.code}; mail-in: the MTA should retry", file=sys.stderr)
        return EX_TEMPFAIL
    except (RedisError, OSError, RuntimeError) as exc:
        print(f"livechat mail-in: cannot store the mail now ({type(exc).__name__}); the MTA should retry",
              file=sys.stderr)
        return EX_TEMPFAIL


def cmd_migrate(args: argparse.Namespace) -> int:
    """Run the pending migrations now (hubs and workers also run them when they start)."""
    from chat import schema

    settings, config = _load(args)

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livechat", description="Self-hosted live-chat support server")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the hub (HTTP and WebSockets)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
    serve.add_argument("--demo", action="store_true", help="demo site at /, demo accounts, every plan open 24/7")
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
    return (getattr(args, "run", None) or cmd_async)(args)


if __name__ == "__main__":
    sys.exit(main())
