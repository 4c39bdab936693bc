"""Mail coming in from a hosted mailbox: `livechat worker` polls the IMAP folder named by
LIVECHAT_IMAP_URL and hands every unread mail to the one intake, `transcripts.intake.take`.

    imaps://user:pass@imap.example.org/INBOX    TLS from the first byte (port 993)
    imap://user:pass@imap.example.org/INBOX     STARTTLS, required (port 143)
    ...?starttls=never                          clear text: a loopback test server only
    ...?cafile=/etc/ssl/our-ca.pem              trust a private CA (certificates are always verified)
    ...?done=Processed                          move handled mail there (created if missing)
    ...?interval=60                             seconds between looks when the server has no IDLE
    ...?timeout=30                              seconds per connection attempt and command

A mail is marked `\\Seen` (or moved to `done`) only after `take` has stored it, found it
stored before, or deliberately ignored it. Whatever fails in between (Redis down, the
connection lost, the worker killed) leaves it unread, so it is fetched again and `take`
recognises a copy it already stored (by Message-ID): a mail is never lost and never stored
twice. Mail over `[mail_in] max_bytes`, and mail the intake cannot read (a bug: logged with its
trace), is left unread in the mailbox for a person, so it never holds up the mail behind it.

The client is the standard library's imaplib, in one thread of its own: imaplib is kept
with Python itself (no dependency to watch), it speaks STARTTLS and UID commands, and IDLE
(absent from imaplib before Python 3.14) takes a few lines on top of it. Every blocking call
(connect, TLS, login, fetch, IDLE) runs in that thread; `take` runs in the worker's loop.
"""

from __future__ import annotations

import asyncio
import functools
import imaplib
import logging
import re
import select
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from redis.exceptions import RedisError

from chat.runtime import Runtime
from transcripts.intake import take

log = logging.getLogger("livechat.imap")

DEFAULT_INTERVAL = 60.0
DEFAULT_TIMEOUT = 30.0
BACKOFF_START, BACKOFF_MAX = 1.0, 300.0  # seconds between reconnection attempts
STOP_WAIT = 3.0       # seconds stop() waits for the poller to log out
STOP_CHECK = 1.0      # how often an IDLE wait looks whether the worker is stopping
MAX_IDLE = 25 * 60    # RFC 2177: re-issue IDLE before the server's 30-minute timeout
_UID = re.compile(rb"UID (\d+)")
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


@dataclass(frozen=True)
class ImapMailbox:
    """Which mailbox and how to reach it; parsed from LIVECHAT_IMAP_URL."""

    host: str
    port: int
    username: str
    password: str
    folder: str = "INBOX"
    implicit_tls: bool = True
    starttls: bool = True
    cafile: str | None = None
    done: str | None = None
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT

    def describe(self) -> str:
        """For logs: everything but the password."""
        return f"{'imaps' if self.implicit_tls else 'imap'}://{self.username}@{self.host}:{self.port}/{self.folder}"


def parse_imap_url(url: str) -> ImapMailbox:
    """Read an imaps:// or imap:// URL; a ValueError names what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps"):
        raise ValueError(f"must start with imaps:// or imap://, not {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError("has no host (imaps://user:pass@host/INBOX)")
    if not parts.username or parts.password is None:
        raise ValueError("needs a user and a password (imaps://user:pass@host/INBOX; percent-encode special characters)")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"starttls", "cafile", "done", "interval", "timeout"}
    if unknown:
        raise ValueError(f"unknown option {sorted(unknown)[0]!r} (starttls, cafile, done, interval, timeout)")
    implicit = parts.scheme == "imaps"
    mode = query.get("starttls", "require")
    if mode not in ("require", "never"):
        raise ValueError("starttls must be require or never")
    try:
        port = parts.port or (993 if implicit else 143)
        interval = float(query.get("interval", DEFAULT_INTERVAL))
        timeout = float(query.get("timeout", DEFAULT_TIMEOUT))
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    if not 0 < interval <= MAX_IDLE or not 0 < timeout <= 600:
        raise ValueError(f"interval must be from 0 to {MAX_IDLE} seconds and timeout from 0 to 600 (not 0)")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    done = query.get("done") or None
    for name in (folder, done or ""):
        if not name.isascii() or any(c in name for c in '"\\\r\n'):
            raise ValueError(f"folder names must be plain ASCII without quotes, not {name!r}")
    return ImapMailbox(
        host=parts.hostname, port=port, username=unquote(parts.username), password=unquote(parts.password),
        folder=folder, implicit_tls=implicit, starttls=not implicit and mode == "require",
        cafile=query.get("cafile"), done=done, interval=interval, timeout=timeout,
    )


def _quoted(folder: str) -> str:
    return f'"{folder}"'


def _check(result: tuple[str, list[Any]], what: str) -> list[Any]:
    typ, data = result
    if typ != "OK":
        detail = data[-1].decode(errors="replace") if data and isinstance(data[-1], bytes) else data
        raise imaplib.IMAP4.error(f"{what} refused: {detail}")
    return data


class ImapPoller:
    """One connection to one mailbox, kept open: take every unread mail, then wait (IDLE
    where offered, else `interval`), and start over; reconnect with back-off on any failure."""

    def __init__(self, rt: Runtime, mailbox: ImapMailbox):
        self.rt = rt
        self.mailbox = mailbox
        # One thread: imaplib connections are not thread-safe, and an IDLE wait may block it for
        # minutes without taking a thread from the loop's default pool (mail parsing uses that).
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap")
        self._stop = threading.Event()
        self._conn: imaplib.IMAP4 | None = None
        self._idle = False
        self._left: set[tuple[bytes, bytes]] = set()  # (UIDVALIDITY, UID) left unread for a person
        self._uidvalidity = b""
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="imap")

    async def stop(self) -> None:
        """Ask the poller to finish the mail in hand and log out, bounded (a worker has
        seconds to exit after SIGTERM); a mail cut off here is simply fetched again."""
        self._stop.set()
        if self._task is not None:
            _, pending = await asyncio.wait([self._task], timeout=STOP_WAIT)
            if pending:
                log.warning("IMAP poller did not stop within %.0fs; leaving it", STOP_WAIT)
                self._task.cancel()
                await asyncio.wait([self._task], timeout=STOP_CHECK)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))

    async def _run(self) -> None:
        delay = BACKOFF_START
        log.info("IMAP: polling %s", self.mailbox.describe())
        while not self._stop.is_set():
            try:
                await self._call(self._connect)
                while not self._stop.is_set():
                    await self._drain()
                    delay = BACKOFF_START
                    await self._call(self._wait)
            except asyncio.CancelledError:
                raise
            except RedisError as exc:
                log.warning("IMAP: mail not stored (Redis: %s); it stays unread, next try in %.0fs",
                            type(exc).__name__, delay)
            except (imaplib.IMAP4.error, OSError, EOFError) as exc:
                log.warning("IMAP: %s unavailable (%s: %s); next try in %.0fs", self.mailbox.describe(),
                            type(exc).__name__, exc, delay)
            except Exception:
                log.exception("IMAP: polling failed; next try in %.0fs", delay)
            finally:
                await asyncio.shield(self._call(self._disconnect))
            if self._stop.is_set():
                break
            await self._call(self._stop.wait, delay)
            delay = min(delay * 2, BACKOFF_MAX)

    async def _drain(self) -> None:
        """Store every unread mail of the folder, marking each only once it is stored."""
        while not self._stop.is_set():
            uids = await self._call(self._unseen)
            if not uids:
                return
            for uid in uids:
                raw = await self._call(self._fetch, uid)
                if raw is None:
                    continue  # expunged by someone else meanwhile
                try:
                    taken = await take(self.rt, raw)  # raises while Redis is down: the mail stays unread
                except (RedisError, OSError):
                    raise
                except Exception:  # one unreadable mail must not hold up the mail behind it
                    log.exception("IMAP: mail %s could not be taken; left unread for a person", uid.decode())
                    self._left.add((self._uidvalidity, uid))
                    continue
                await self._call(self._mark_done, uid)
                log.info("IMAP: mail %s %s%s", uid.decode(), taken.outcome,
                         f" {taken.ref or taken.reason}" if taken.ref or taken.reason else "")
                if self._stop.is_set():
                    return

    # --- blocking IMAP work, in the poller's own thread -------------------------------

    def _connect(self) -> None:
        mb = self.mailbox
        context = ssl.create_default_context(cafile=mb.cafile)
        if mb.implicit_tls:
            conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(mb.host, mb.port, ssl_context=context, timeout=mb.timeout)
        else:
            conn = imaplib.IMAP4(mb.host, mb.port, timeout=mb.timeout)
            if mb.starttls:
                try:
                    conn.starttls(context)
                except imaplib.IMAP4.error:
                    conn.shutdown()
                    raise imaplib.IMAP4.error("the server offers no STARTTLS (use imaps://, or "
                                              "?starttls=never for a loopback test server)") from None
        self._conn = conn
        _check(conn.login(mb.username, mb.password), "LOGIN")
        self._idle = b"IDLE" in b" ".join(_check(conn.capability(), "CAPABILITY")).upper().split()
        if mb.done:
            conn.create(_quoted(mb.done))  # refused when it exists already: that is fine
        _check(conn.select(_quoted(mb.folder)), f"SELECT {mb.folder}")
        self._uidvalidity = (conn.response("UIDVALIDITY")[1] or [b""])[0] or b""
        log.info("IMAP: connected to %s (%s)", mb.describe(), "IDLE" if self._idle else f"every {mb.interval:.0f}s")

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError, EOFError):
            try:
                conn.shutdown()
            except OSError:
                pass

    def _unseen(self) -> list[bytes]:
        """UIDs of the unread mail small enough to take (oldest first)."""
        conn = self._conn
        assert conn is not None
        found = _check(conn.uid("SEARCH", None, "UNSEEN UNDELETED"), "SEARCH")
        uids = (found[0] or b"").split() if found else []
        result = []
        for start in range(0, len(uids), 500):
            chunk = b",".join(uids[start:start + 500]).decode()
            for item in _check(conn.uid("FETCH", chunk, "(RFC822.SIZE)"), "FETCH RFC822.SIZE"):
                line = (item[0] if isinstance(item, tuple) else item) or b""
                uid, size = _UID.search(line), _SIZE.search(line)
                if not uid or not size:
                    continue  # an unrelated flag update reported on the way
                if (self._uidvalidity, uid.group(1)) in self._left:
                    continue
                if int(size.group(1)) <= self.rt.config.mail_in.max_bytes:
                    result.append(uid.group(1))
                else:
                    self._left.add((self._uidvalidity, uid.group(1)))
                    log.warning("IMAP: mail %s is %s bytes, over [mail_in] max_bytes; left unread for a person",
                                uid.group(1).decode(), size.group(1).decode())
        return sorted(set(result), key=int)

    def _fetch(self, uid: bytes) -> bytes | None:
        """The whole mail, without setting \\Seen (BODY.PEEK): it is marked once stored."""
        conn = self._conn
        assert conn is not None
        data = _check(conn.uid("FETCH", uid.decode(), "(BODY.PEEK[])"), "FETCH")
        for item in data:
            if isinstance(item, tuple) and b"BODY[]" in item[0]:
                found = _UID.search(item[0])
                if found and found.group(1) == uid:
                    return item[1]
        return None

    def _mark_done(self, uid: bytes) -> None:
        conn = self._conn
        assert conn is not None
        _check(conn.uid("STORE", uid.decode(), "+FLAGS.SILENT", r"(\Seen)"), "STORE \\Seen")
        if self.mailbox.done:
            capabilities = b" ".join(_check(conn.capability(), "CAPABILITY")).upper().split()
            if b"MOVE" in capabilities:
                _check(conn.uid("MOVE", uid.decode(), _quoted(self.mailbox.done)), "MOVE")
            else:
                _check(conn.uid("COPY", uid.decode(), _quoted(self.mailbox.done)), "COPY")
                _check(conn.uid("STORE", uid.decode(), "+FLAGS.SILENT", r"(\Deleted)"), "STORE \\Deleted")
                if b"UIDPLUS" in capabilities:
                    _check(conn.uid("EXPUNGE", uid.decode()), "UID EXPUNGE")
                else:
                    _check(conn.expunge(), "EXPUNGE")

    def _wait(self) -> None:
        """Until the mailbox changes (IDLE) or `interval` has passed, or the worker stops."""
        conn = self._conn
        assert conn is not None
        conn.untagged_responses.clear()  # flag updates and expunges nobody reads would pile up
        if not self._idle:
            self._stop.wait(self.mailbox.interval)
            return
        deadline = time.monotonic() + min(self.mailbox.interval, MAX_IDLE)
        tag = b"LCIDLE"
        conn.send(tag + b" IDLE\r\n")
        line = conn.readline()
        if not line.startswith(b"+"):
            raise imaplib.IMAP4.error(f"IDLE refused: {line[:200]!r}")
        # Wait on the socket, not on a read timeout: a timed-out read makes imaplib's file
        # unusable. A push that arrived together with the "+" is only seen at the deadline,
        # which is why IDLE ends every `interval` seconds anyway.
        sock = conn.socket()
        while not self._stop.is_set() and time.monotonic() < deadline:
            pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
            if not pending and not select.select([sock], [], [], STOP_CHECK)[0]:
                continue
            line = conn.readline()
            if not line or line.startswith(b"* BYE"):
                raise imaplib.IMAP4.abort("the server closed the connection during IDLE")
            if line.startswith(b"* ") and not line.startswith(b"* OK"):
                break  # new mail, or flags changed by another client: look again
        conn.send(b"DONE\r\n")
        while True:
            line = conn.readline()
            if not line:
                raise imaplib.IMAP4.abort("the server closed the connection after IDLE")
            if line.startswith(tag + b" "):
                if not line[len(tag) + 1:].upper().startswith(b"OK"):
                    raise imaplib.IMAP4.error(f"IDLE ended with {line[:200]!r}")
                return
