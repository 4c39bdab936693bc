"""Deployment settings, read from the environment once at start-up.

Desk policy (plans, hours, timers) lives in the TOML file named by LIVECHAT_CONFIG,
see chat/config.py; this module holds only where things are and how to reach them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping


@dataclass(frozen=True)
class Settings:
    redis_url: str | None = None
    smtp_url: str | None = None
    data_dir: Path = Path("var")
    config_path: Path | None = None
    site_secret: str = ""
    support_address: str = "support@localhost"
    mail_from: str = ""
    session_secret: str = ""
    allowed_origins: tuple[str, ...] = ()
    redis_fsync: str = "always"
    public_url: str = ""
    session_ttl: int = 12 * 3600
    metrics_token: str = ""
    mail_in_url: str | None = None   # LIVECHAT_MAIL_IN: smtp:// or lmtp:// listener of `livechat worker`
    imap_url: str | None = None      # LIVECHAT_IMAP_URL: the mailbox `livechat worker` polls
    help_dir: Path | None = None
    reply_address: str = ""          # LIVECHAT_REPLY_ADDRESS: support+{token}@example.org, signed per ticket
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def help_folder(self) -> Path:
        """Where the help centre's articles are (LIVECHAT_HELP_DIR, else <data>/help)."""
        return self.help_dir or self.data_dir / "help"

    @property
    def sender(self) -> str:
        return self.mail_from or self.support_address


def _reply_address(value: str) -> str:
    from transcripts.reply_address import valid_template  # the address format has one home

    value = value.strip()
    if value and not valid_template(value):
        raise SystemExit(f"LIVECHAT_REPLY_ADDRESS must be an address with {{token}} once in its local part, "
                         f"such as support+{{token}}@example.org, not {value!r}")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read every LIVECHAT_* variable (documented in docs/configuration.md) into one object."""
    env = os.environ if env is None else env
    origins = tuple(o.strip().rstrip("/") for o in env.get("LIVECHAT_ALLOWED_ORIGINS", "").split(",") if o.strip())
    fsync = env.get("LIVECHAT_REDIS_FSYNC", "always")
    if fsync not in ("always", "everysec", "no"):
        raise SystemExit(f"LIVECHAT_REDIS_FSYNC must be always, everysec or no, not {fsync!r}")
    return Settings(
        redis_url=env.get("REDIS_URL") or None,
        smtp_url=env.get("SMTP_URL") or None,
        data_dir=Path(env.get("LIVECHAT_DATA_DIR", "var")),
        config_path=Path(env["LIVECHAT_CONFIG"]) if env.get("LIVECHAT_CONFIG") else None,
        site_secret=env.get("LIVECHAT_SITE_SECRET", ""),
        support_address=env.get("LIVECHAT_SUPPORT_ADDRESS", "support@localhost"),
        mail_from=env.get("LIVECHAT_MAIL_FROM", ""),
        session_secret=env.get("LIVECHAT_SESSION_SECRET", ""),
        allowed_origins=origins,
        redis_fsync=fsync,
        public_url=env.get("LIVECHAT_PUBLIC_URL", "").rstrip("/"),
        session_ttl=int(env.get("LIVECHAT_SESSION_TTL", 12 * 3600)),
        metrics_token=env.get("LIVECHAT_METRICS_TOKEN", ""),
        mail_in_url=env.get("LIVECHAT_MAIL_IN") or None,
        imap_url=env.get("LIVECHAT_IMAP_URL") or None,
        help_dir=Path(env["LIVECHAT_HELP_DIR"]) if env.get("LIVECHAT_HELP_DIR") else None,
        reply_address=_reply_address(env.get("LIVECHAT_REPLY_ADDRESS", "")),
    )
