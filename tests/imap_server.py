"""A real Dovecot IMAP server for the tests: its own throwaway configuration (never the system's
/etc/dovecot), a passwd-file of mail users, Maildirs in a temporary folder, clear-text IMAP on
a loopback port. `make test` installs Debian's dovecot-imapd when the binary is missing.

As root (CI), Dovecot's login processes run as its `dovenull` user and the mail processes as
its `dovecot` user (Dovecot refuses to run either as root); unprivileged, everything runs as
the current user. The folder is made with mkdtemp under /tmp, not under pytest's private
(0700) temporary root, so that those users can reach it.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from tests.servers import free_port, wait_until

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
_APPENDUID = re.compile(rb"APPENDUID \d+ (\d+)")


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
