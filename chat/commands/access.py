"""How every command reaches the data: the configuration, Redis (the embedded one when no
REDIS_URL is set) and the schema brought up to date before anything reads it."""

from __future__ import annotations

import argparse
import asyncio
import logging

from chat.config import ConfigError, DeskConfig, load_config
from chat.embedded_redis import EmbeddedRedis
from chat.settings import Settings, load_settings
from chat.store import redis_client


log = logging.getLogger("livechat")


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

def load(args: argparse.Namespace, demo: bool = False):
    settings = load_settings()
    try:
        config = load_config(settings.config_path, demo=demo)
    except ConfigError as exc:
        raise SystemExit(f"livechat: configuration error in {exc}") from None
    return settings, config

def ensure_schema(redis_url: str, config: DeskConfig, attempts: int = 30) -> None:
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

def check_mail(settings: Settings) -> None:
    """Refuse to start with an unusable SMTP_URL rather than queue mail nobody will send."""
    from transcripts.delivery import backend_for

    try:
        backend_for(settings)
    except ValueError as exc:
        raise SystemExit(f"livechat: SMTP_URL: {exc}") from None

def run_with_runtime(args: argparse.Namespace) -> int:
    """Run a subcommand that needs a Runtime (the transcript commands)."""
    from chat.runtime import Runtime

    settings, config = load(args)

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
        ensure_schema(url, config)
        return asyncio.run(run(url))
