"""Mail for the tests: a real SMTP server (aiosmtpd) that keeps what it accepts, a real Dovecot
IMAP server, and the mails a customer's mail program writes.

Dovecot runs with its own throwaway configuration (never the system's
/etc/dovecot), a passwd-file of mail users, Maildirs in a temporary folder, clear-text IMAP on
a loopback port. `make test` installs Debian's dovecot-imapd when the binary is missing.

As root (CI), Dovecot's login processes run as its `dovenull` user and the mail processes as
its `dovecot` user (Dovecot refuses to run either as root); unprivileged, everything runs as
the current user. The folder is made with mkdtemp under /tmp, not under pytest's private
(0700) temporary root, so that those users can reach it.
"""

from __future__ import annotations

import email
import email.policy
import grp
import imaplib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.servers import free_port
from tests.support.waiting import wait_until

SUPPORT = "support@example.org"
MAIL_FROM = "Example Support <help@example.org>"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
_APPENDUID = re.compile(rb"APPENDUID \d+ (\d+)")


# --- a real SMTP server ----------------------------------------------------------


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: email.message.EmailMessage


class RecordingHandler:
    """aiosmtpd handler keeping every accepted message (the server runs in its own thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    """A real aiosmtpd server on a loopback port that can be stopped and restarted (same
    port) to simulate an outage."""

    port: int = field(default_factory=free_port)
    handler: RecordingHandler = field(default_factory=RecordingHandler)
    tls_context: Any = None        # STARTTLS offered when set
    ssl_context: Any = None        # implicit TLS when set
    controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> "SmtpServer":
        kwargs: dict[str, Any] = {}
        if self.tls_context is not None:
            kwargs["tls_context"] = self.tls_context
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     ssl_context=self.ssl_context, **kwargs)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.recipients]


# --- a real IMAP server ----------------------------------------------------------


class Dovecot:
    """Start, use as a mail client, and stop one `dovecot -F` with the given users."""

    def __init__(self, users: dict[str, str]):
        self.users = users
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="livechat-dovecot-"))
        self.process: subprocess.Popen | None = None

    def url(self, user: str, folder: str = "INBOX", **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"starttls": "never", **options}.items())
        return f"imap://{user}:{self.users[user]}@127.0.0.1:{self.port}/{folder}?{query}"

    def _config(self) -> str:
        root = self.root
        if os.geteuid() == 0:
            mail_user = pwd.getpwnam("dovecot")
            users = ("default_internal_user = dovecot\ndefault_internal_group = dovecot\n"
                     "default_login_user = dovenull\nservice auth {\n  user = root\n}\n")
        else:
            mail_user = pwd.getpwuid(os.geteuid())
            group = grp.getgrgid(mail_user.pw_gid).gr_name
            users = (f"default_internal_user = {mail_user.pw_name}\ndefault_internal_group = {group}\n"
                     f"default_login_user = {mail_user.pw_name}\n")
        for folder in ("mail", "home"):
            (root / folder).mkdir(exist_ok=True)
            os.chown(root / folder, mail_user.pw_uid, mail_user.pw_gid)
        return f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
mailbox_idle_check_interval = 1 secs
first_valid_uid = 0
{users}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={root}/home/%u
}}
service imap-login {{
  {"" if os.geteuid() == 0 else "chroot ="}
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""

    def start(self) -> "Dovecot":
        if not Path(DOVECOT).exists():
            raise RuntimeError("no dovecot binary: `make test` installs it (apt-get install dovecot-imapd)")
        os.chmod(self.root, 0o711)
        (self.root / "passwd").write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in self.users.items()))
        os.chmod(self.root / "passwd", 0o600)
        config = self.root / "dovecot.conf"
        config.write_text(self._config())
        log = open(self.root / "master.log", "ab")
        self.process = subprocess.Popen([DOVECOT, "-c", str(config), "-F"], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(self._answers, 30, 0.05, "dovecot to answer")
        return self

    def _answers(self) -> bool:
        if self.process and self.process.poll() is not None:
            raise AssertionError(f"dovecot exited: {self.log_tail()}")
        try:
            with self.client(next(iter(self.users))):
                return True
        except (OSError, imaplib.IMAP4.error):
            return False

    def log_tail(self) -> str:
        text = ""
        for name in ("master.log", "dovecot.log"):
            path = self.root / name
            text += path.read_text(errors="replace")[-2000:] if path.exists() else ""
        return text

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    # --- a mail client (imaplib: a real one) ---------------------------------------------

    def client(self, user: str, folder: str = "INBOX") -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        conn.login(user, self.users[user])
        conn.select(f'"{folder}"')
        return conn

    def deliver(self, user: str, message: bytes) -> bytes:
        """APPEND a mail to the user's INBOX, unread; its UID."""
        with self.client(user) as conn:
            typ, data = conn.append("INBOX", None, None, message)
            assert typ == "OK", data
            return _APPENDUID.search(data[-1]).group(1)

    def flags(self, user: str, uid: bytes, folder: str = "INBOX") -> set[str] | None:
        """The flags of one mail, or None when it is not (or no longer) in the folder."""
        with self.client(user, folder) as conn:
            typ, data = conn.uid("FETCH", uid.decode(), "(FLAGS)")
            for item in data:
                line = item[0] if isinstance(item, tuple) else item
                if line and f"UID {uid.decode()} ".encode() in line + b" ":
                    return set(re.search(rb"FLAGS \(([^)]*)\)", line).group(1).decode().split())
            return None

    def unflag_seen(self, user: str, uid: bytes) -> None:
        """What another mail reader does when a person marks the mail unread."""
        with self.client(user) as conn:
            typ, data = conn.uid("STORE", uid.decode(), "-FLAGS", r"(\Seen)")
            assert typ == "OK", data

    def uids(self, user: str, folder: str) -> list[bytes]:
        """The UIDs in a folder ([] while it does not exist)."""
        with self.client(user, folder) as conn:
            if conn.state != "SELECTED":
                return []
            typ, data = conn.uid("SEARCH", None, "ALL")
            return (data[0] or b"").split()


# --- mails as customers write them ------------------------------------------------


def text_part(msg: EmailMessage) -> str:
    return msg.get_body(("plain",)).get_content()


def html_part(msg: EmailMessage) -> str:
    return msg.get_body(("html",)).get_content()


def _answer(to: EmailMessage, sender: str, recipient: str, body: str) -> EmailMessage:
    """A mail threaded under ``to`` (Re: subject, In-Reply-To and References)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = f"Re: {to['Subject']}"
    msg["Message-ID"] = make_msgid(domain="customer.example")
    msg["In-Reply-To"] = to["Message-ID"]
    msg["References"] = to["Message-ID"]
    msg.set_content(body)
    return msg


def customer_reply(to: EmailMessage, sender: str, text: str) -> EmailMessage:
    """A short answer to the support address, with a one-line quote."""
    return _answer(to, sender, SUPPORT, f"{text}\n\n> earlier mail\n")


def reply(to: EmailMessage, sender: str, text: str) -> EmailMessage:
    """What a mail program makes of "Reply": threaded headers, quoted original."""
    quoted = "\n".join(f"> {line}" for line in to.get_body(("plain",)).get_content().splitlines()[:5])
    return _answer(to, f"Customer <{sender}>", str(to["Reply-To"] or to["From"]),
                   f"{text}\n\nOn Fri, 27 Nov 2026 at 10:00, Support <{to['From']}> wrote:\n{quoted}\n")
