"""The layout of livechat's data in Redis carries a version, and older layouts are migrated.

A desk upgraded on a Friday evening must find on Monday every account, chat, ticket and
pending mail it had. So every process that opens the data (`livechat serve`, `worker`, the
account and transcript commands) first calls :func:`ensure_current`: data written by a newer
livechat is refused (a rollback must restore the backup instead of running old code on a
layout it does not know), and older data is brought up to date by the pending migrations,
one at a time, under a lock so that hubs starting together migrate once. Every migration is
idempotent and the version is recorded after each one, so a crash halfway and a restart
finish the job without doing anything twice.

Layout 1 is the data of every livechat before this module: it has no version key. An empty
Redis is stamped with the current version at once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from chat import frames, keys
from chat.config import DeskConfig
from chat.store import Lua

log = logging.getLogger("livechat.schema")

LOCK_TTL_MS = 30_000      # a crashed migrator's lock lapses after this; another process finishes its work
LOCK_REFRESH = 10.0       # seconds between renewals of the lock while a migration runs
LOCK_POLL = 0.1           # seconds between looks at the lock by processes waiting for it

_RELEASE = Lua("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")
_RENEW = Lua("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
""")

# A migration describes what it changed (or, in a dry run, what it would change).
Apply = Callable[[Redis, DeskConfig, bool], Awaitable[list[str]]]


@dataclass(frozen=True)
class Migration:
    to: int         # the layout version this migration produces from version to - 1
    summary: str
    apply: Apply


class SchemaTooNew(Exception):
    """The data was written by a newer livechat than this one."""

    def __init__(self, found: int):
        super().__init__(
            f"the data in Redis has schema version {found}, but this livechat understands versions up to "
            f"{CURRENT}. Run the livechat release that wrote it (or a newer one), or restore the backup "
            f"taken before the upgrade (see docs/upgrading.md).")
        self.found = found


# --- the migrations, oldest first ------------------------------------------------------


async def _seed_handling_average(redis: Redis, config: DeskConfig, dry_run: bool) -> list[str]:
    """Layout 1 never wrote the running handling-time average behind queue ETAs (every
    `queued` frame said `eta_s: null`); start it from the all-time mean of handled chats."""
    total, count, current = await redis.hmget(keys.STATS, ["handle_sum", "handle_count", "aht"])
    if current is not None or not count or float(count) <= 0:
        return []
    mean = float(total or 0) / float(count)
    if not dry_run:
        await redis.hsetnx(keys.STATS, "aht", repr(mean))
    return [f"handling-time average for ETAs set to {mean:.1f} s from {int(float(count))} handled chats"]


async def _ticket_life(redis: Redis, config: DeskConfig, dry_run: bool) -> list[str]:
    """Layout 1 tickets had no life: two mails, then the conversation went on by email outside
    the desk. Give each the ticket desk's fields. One made within `[tickets] pending_days` is
    `open`, waiting for us since it was made, due under its plan's first-response target; an
    older one is taken as handled and becomes `solved` now (a reply within `reopen_days`
    reopens it), so an upgraded desk does not open on a wall of long-breached tickets."""
    from transcripts.targets import initial_fields  # the rule of targets has one home

    now = time.time()
    opened = solved = 0
    for raw in await redis.zrange(_before_rename(keys.TICKETS, dry_run), 0, -1):
        ref = raw.decode()
        fields = await redis.hmget(_before_rename(keys.ticket(ref), dry_run), ["status", "due_at", "solved_at", "plan", "emergency",
                                                      "created_at"])
        status, due, done, plan, emergency, created = (v.decode() if v is not None else None for v in fields)
        if status is None or due is not None or done is not None:
            continue  # purged meanwhile, or already migrated
        created_at = float(created or 0)
        recent = now - created_at < config.tickets.pending_days * 86400
        opened, solved = opened + recent, solved + (not recent)
        if dry_run:
            continue
        life = {"assignee": "", "awaiting_since": repr(created_at), "first_response_at": "", "pending_since": "",
                "channel": frames.CHANNEL_CHAT}
        async with redis.pipeline(transaction=True) as pipe:
            if recent:
                due_at = initial_fields(config, {"plan": plan, "emergency": emergency == "1"}, created_at)["due_at"]
                pipe.hset(keys.ticket(ref), mapping={**life, "status": frames.TICKET_OPEN, "solved_at": "", "due_at": repr(due_at)})
                pipe.zadd(keys.TICKETS_DUE, {ref: due_at})
            else:
                pipe.hset(keys.ticket(ref), mapping={**life, "status": frames.TICKET_SOLVED, "solved_at": repr(now), "due_at": ""})
                pipe.zrem(keys.tickets_by_status(frames.TICKET_OPEN), ref)
                pipe.zadd(keys.tickets_by_status(frames.TICKET_SOLVED), {ref: created_at})
            await pipe.execute()
    changes = []
    if opened:
        changes.append(f"{opened} tickets given a status, a response target and a place among due tickets")
    if solved:
        changes.append(f"{solved} tickets older than pending_days taken as handled (solved)")
    return changes


async def _scan(redis: Redis, pattern: str):
    """Every key matching pattern; on a cluster, on every master (scan_iter does both)."""
    async for key in redis.scan_iter(match=pattern, count=1000):
        yield key.decode()


async def _resume_hashes(redis: Redis, config: DeskConfig, dry_run: bool) -> list[str]:
    """A chat now names the hash of its resume token, so that a chat closed before its visitor
    wrote anything can take its resume key with it; layout 1 kept only the key itself."""
    changed = 0
    async for key in _scan(redis, keys.resume("*")):
        chat_id = await redis.get(key)
        if chat_id is None or await redis.hexists(keys.chat(chat_id.decode()), "resume_hash"):
            continue
        if not await redis.exists(keys.chat(chat_id.decode())):
            continue
        changed += 1
        if not dry_run:
            await redis.hsetnx(keys.chat(chat_id.decode()), "resume_hash", key.rpartition(":")[2])
    return [f"{changed} chats told the hash of their resume token"] if changed else []


async def _session_lists(redis: Redis, config: DeskConfig, dry_run: bool) -> list[str]:
    """Sessions are now listed per user, so that a role or password change ends them all;
    list the sessions layout 1 left open under their users."""
    changed = 0
    prefix = _before_rename(keys.session(""), dry_run)
    async for key in _scan(redis, prefix + "*"):
        session_id = key[len(prefix):]
        username, ttl = await redis.hget(key, "username"), await redis.ttl(key)
        if username is None or await redis.sismember(_before_rename(keys.user_sessions(username.decode()), dry_run),
                                                     session_id):
            continue
        changed += 1
        if not dry_run:
            listed = keys.user_sessions(username.decode())
            async with redis.pipeline(transaction=True) as pipe:
                pipe.sadd(listed, session_id)
                if ttl > 0:
                    pipe.expire(listed, max(ttl, await redis.ttl(listed)))
                await pipe.execute()
    return [f"{changed} open sessions listed under their users"] if changed else []


async def _customer_index(redis: Redis, config: DeskConfig, dry_run: bool) -> list[str]:
    """A verified customer's earlier tickets are now found by their id, apart from what anyone
    filed under the same address: give layout-1 tickets of verified chats their customer."""
    from transcripts.contact import customer_hash

    changed = 0
    for raw in await redis.zrange(_before_rename(keys.TICKETS, dry_run), 0, -1):
        ref = raw.decode()
        sub, chat_id, verified = await redis.hmget(_before_rename(keys.ticket(ref), dry_run), ["sub", "chat_id", "verified"])
        if sub is not None or verified != b"1" or not chat_id:
            continue
        customer = await redis.hget(keys.chat(chat_id.decode()), "sub")
        if not customer:
            continue
        changed += 1
        if not dry_run:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.hset(keys.ticket(ref), "sub", customer)
                pipe.sadd(keys.tickets_by_customer(customer_hash(customer.decode())), ref)
                await pipe.execute()
    return [f"{changed} tickets of verified customers indexed by customer"] if changed else []


# Layout 1's names of the keys that layout 2 gives a hash tag (chat/keys.py), so that each
# transaction and script touches one slot of a Redis Cluster: (old name, new name) for a
# single key, (old prefix + "*", new prefix) for a family of keys. Only the history of the
# names lives here; every current name is in chat/keys.py.
_RENAMED_KEYS: tuple[tuple[str, str, str], ...] = (
    # (what, old name, new name)
    ("the account list", "lc:accounts", keys.ACCOUNTS),
    ("canned replies", "lc:canned", keys.CANNED_REPLIES),
    ("ticket indexes", "lc:tickets", keys.TICKETS),
    ("ticket indexes", "lc:tickets:due", keys.TICKETS_DUE),
    ("ticket indexes", "lc:tickets:pending-since", keys.TICKETS_PENDING),
    ("ticket indexes", "lc:tickets:status:open", keys.tickets_by_status(frames.TICKET_OPEN)),
    ("ticket indexes", "lc:tickets:status:pending", keys.tickets_by_status(frames.TICKET_PENDING)),
    ("ticket indexes", "lc:tickets:status:solved", keys.tickets_by_status(frames.TICKET_SOLVED)),
    ("the outbox", "lc:outbox", keys.OUTBOX),
    ("the outbox", "lc:outbox-failed", keys.OUTBOX_FAILED),
    ("the archive", "lc:closed", keys.CHATS_CLOSED),
)
_RENAMED_FAMILIES: tuple[tuple[str, str, str], ...] = (
    # (what, old prefix, new prefix): every key that starts with the old prefix
    ("accounts", "lc:account:", keys.account("")),
    ("sessions", "lc:session:", keys.session("")),
    ("session lists", "lc:sessions:", keys.user_sessions("")),
    ("login limits", "lc:login:", keys.login_attempts("")),
    ("ticket indexes", "lc:tickets:by-email:", keys.tickets_by_email("")),
    ("ticket indexes", "lc:tickets:by-customer:", keys.tickets_by_customer("")),
    ("the archive", "lc:chats:by-email:", keys.chats_by_email("")),
)
# Keys named after a ticket: layout 1's lc:ticket:REF[:thread|:files|:viewers] and
# lc:outbox:REF.kind (a ticket's mail) move into the ticket's slot {t:REF}.
_OLD_TICKET_KEY = re.compile(r"^lc:ticket:(LC-[0-9A-Z]+)(:thread|:files|:viewers)?$")
_OLD_OUTBOX_MAIL = re.compile(r"^lc:outbox:((LC-[0-9A-Z]+)\..+)$")
_NEW_TICKET_KEY = re.compile(r"^lc:ticket:\{t:(LC-[0-9A-Z]+)\}(:thread|:files|:viewers)?$")


async def _rename(redis: Redis, old: str, new: str) -> bool:
    """Move one key to its new name (TTL kept). Idempotent: a key already moved is not there
    any more; a crash between two keys leaves each key under one of its names, and the next
    run moves the rest. A key found under both names is left as it is and logged, never
    overwritten."""
    try:
        if await redis.renamenx(old, new):
            return True
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return False  # moved meanwhile by another process
        raise
    log.warning("key %s is also under its new name %s; the old one is left for the operator", old, new)
    return False


async def _tagged_names(redis: Redis, config: DeskConfig, dry_run: bool) -> list[str]:
    """Give the keys of accounts, sessions, login limits, canned replies, tickets (and their
    mails), their indexes, the outbox and the archive their hash tag (see _RENAMED_KEYS). Runs on the single Redis a layout-1 desk lives on, before a move to a
    cluster (RENAME across slots is refused by a cluster, and layout 1 never ran on one)."""
    moved: dict[str, int] = {}
    for what, old, new in _RENAMED_KEYS:
        if old != new and await redis.exists(old):
            if dry_run or await _rename(redis, old, new):
                moved[what] = moved.get(what, 0) + 1
    for what, old_prefix, new_prefix in _RENAMED_FAMILIES:
        if old_prefix == new_prefix:
            continue
        async for key in _scan(redis, old_prefix + "*"):
            if dry_run or await _rename(redis, key, new_prefix + key[len(old_prefix):]):
                moved[what] = moved.get(what, 0) + 1
    async for key in _scan(redis, "lc:ticket:LC-*"):
        found = _OLD_TICKET_KEY.match(key)
        if found and (dry_run or await _rename(redis, key, keys.ticket(found[1]) + (found[2] or ""))):
            moved["tickets"] = moved.get("tickets", 0) + 1
    async for key in _scan(redis, "lc:outbox:LC-*"):
        found = _OLD_OUTBOX_MAIL.match(key)
        if not found:
            continue
        if not dry_run:
            if not await _rename(redis, key, keys.outbox_mail(found[1])):
                continue
            await redis.sadd(keys.ticket_mails(found[2]), found[1])  # deleted with its ticket
        moved["queued mails"] = moved.get("queued mails", 0) + 1
    return [f"{what}: {n} keys renamed with their hash tag" for what, n in moved.items()]


def _before_rename(key: str, dry_run: bool) -> str:
    """The name a later step of a dry run finds this key under: nothing was renamed then."""
    if not dry_run:
        return key
    for _, old, new in _RENAMED_KEYS:
        if key == new:
            return old
    for _, old_prefix, new_prefix in _RENAMED_FAMILIES:
        if key.startswith(new_prefix):
            return old_prefix + key[len(new_prefix):]
    found = _NEW_TICKET_KEY.match(key)
    if found:
        return f"lc:ticket:{found[1]}{found[2] or ''}"
    return key


async def _layout_2(redis: Redis, config: DeskConfig, dry_run: bool) -> list[str]:
    # The renames come first: every later step reads the keys under their new names.
    return [*await _tagged_names(redis, config, dry_run), *await _seed_handling_average(redis, config, dry_run), *await _ticket_life(redis, config, dry_run),
            *await _resume_hashes(redis, config, dry_run), *await _session_lists(redis, config, dry_run),
            *await _customer_index(redis, config, dry_run)]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "schema version recorded; keys of accounts, sessions, login limits, tickets, the outbox and the archive tagged for Redis Cluster; ETA average seeded; tickets given their life and due times; "
                 "chats name their resume hash; sessions listed per user", _layout_2),
)

CURRENT = MIGRATIONS[-1].to if MIGRATIONS else 1


# --- reading the version ---------------------------------------------------------------


async def _has_data(redis: Redis) -> bool:
    """Any livechat key at all (only looked at once, when no version is recorded)."""
    async for _ in _scan(redis, f"{keys.PREFIX}:*"):
        return True
    return False


async def stored_version(redis: Redis) -> int | None:
    raw = await redis.get(keys.SCHEMA_VERSION)
    return int(raw) if raw is not None else None


async def current_version(redis: Redis) -> int | None:
    """The data's layout version: the recorded one, 1 for data from before versions, or
    None for an empty Redis."""
    version = await stored_version(redis)
    if version is not None:
        return version
    return 1 if await _has_data(redis) else None


def pending(version: int | None) -> list[Migration]:
    if version is None:
        return []
    if version > CURRENT:
        raise SchemaTooNew(version)
    return [m for m in MIGRATIONS if m.to > version]


# --- migrating -------------------------------------------------------------------------


@dataclass
class Outcome:
    before: int | None
    after: int
    applied: list[tuple[Migration, list[str]]]


async def dry_run(redis: Redis, config: DeskConfig) -> Outcome:
    """What :func:`ensure_current` would do, changing nothing."""
    version = await current_version(redis)
    plan = pending(version)
    return Outcome(version, plan[-1].to if plan else (version or CURRENT),
                   [(m, await m.apply(redis, config, True)) for m in plan])


async def ensure_current(redis: Redis, config: DeskConfig) -> Outcome:
    """Bring the data to :data:`CURRENT` (or stamp an empty Redis); raise SchemaTooNew."""
    before = await current_version(redis)
    pending(before)  # refuse newer data before taking any lock
    if before is None:
        await redis.set(keys.SCHEMA_VERSION, CURRENT, nx=True)
    applied: list[tuple[Migration, list[str]]] = []
    while pending(await current_version(redis)):
        token = secrets.token_hex(16)
        if not await redis.set(keys.SCHEMA_LOCK, token, nx=True, px=LOCK_TTL_MS):
            await asyncio.sleep(LOCK_POLL)  # another process migrates; wait for it to finish
            continue
        renewer = asyncio.create_task(_renew(redis, token))
        try:
            for migration in pending(await current_version(redis)):
                changes = await migration.apply(redis, config, False)
                await redis.set(keys.SCHEMA_VERSION, migration.to)
                log.info("migrated the data to schema version %d (%s): %s", migration.to, migration.summary,
                         "; ".join(changes) or "nothing to move")
                applied.append((migration, changes))
        finally:
            renewer.cancel()
            await _RELEASE(redis, [keys.SCHEMA_LOCK], [token])
    return Outcome(before, await current_version(redis) or CURRENT, applied)


async def _renew(redis: Redis, token: str) -> None:
    while True:
        await asyncio.sleep(LOCK_REFRESH)
        await _RENEW(redis, [keys.SCHEMA_LOCK], [token, LOCK_TTL_MS])
