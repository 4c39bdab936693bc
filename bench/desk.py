"""Setting a hub's desk up for a scenario: agent accounts, their session cookies, and (for
the deepest routing queue) waiting chats written straight into Redis.

Accounts go through agents.accounts.save_account. argon2id costs ~0.2 s per hash here, so the
password is hashed once and the same hash is given to every bench account; save_account
then updates the rest of each account as usual.

Sessions: the first agent logs in for real with POST /agent/login (form fields username and
password, no Origin: a bare client) and its ``lc_session`` cookie is used. Verifying a
password costs the hub ~0.2 s of its one core, so the other agents' sessions are opened
with agents.sessions.open_session against the same Redis and the hubs' shared secret,
which is what the login handler itself calls after the password check.
"""

from __future__ import annotations

import http.client
import time
import urllib.parse
from typing import Any

import msgpack
from redis.asyncio import Redis

from agents.accounts import save_account
from agents.sessions import COOKIE, open_session
from chat import chats, keys
from chat.config import parse_config
from chat.plans import virtual_arrival
from chat.queue import Queue, topic_key
from chat.runtime import Runtime
from chat.store import redis_client  # a cluster URL too (the scale scenario)
from chat.settings import Settings

from bench.servers import BENCH_CONFIG, HOST

PASSWORD = "bench-password-0123"


async def create_agents(redis_url: str, usernames: list[str], max_chats: int, langs: tuple[str, ...] = ("en",)) -> None:
    redis = redis_client(redis_url)
    try:
        first, rest = usernames[0], usernames[1:]
        await save_account(redis, first, PASSWORD, name=first.capitalize(), langs=langs, max_chats=max_chats)
        hashed = await redis.hget(keys.account(first), "password")
        for username in rest:
            await redis.hset(keys.account(username), "password", hashed)
            await save_account(redis, username, None, name=username.capitalize(), langs=langs, max_chats=max_chats)
    finally:
        await redis.aclose()


def post_login(port: int, username: str, password: str = PASSWORD) -> tuple[str, float]:
    """POST /agent/login as a bare client; the lc_session cookie and the seconds it took."""
    body = urllib.parse.urlencode({"username": username, "password": password})
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    t0 = time.monotonic()
    try:
        conn.request("POST", "/agent/login", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.read()
        elapsed = time.monotonic() - t0
        for name, value in response.getheaders():
            if name.lower() == "set-cookie" and value.startswith(COOKIE + "="):
                return value.split(";", 1)[0].split("=", 1)[1], elapsed
        raise RuntimeError(f"POST /agent/login for {username} answered {response.status} without a session cookie")
    finally:
        conn.close()


async def open_sessions(redis_url: str, usernames: list[str]) -> dict[str, str]:
    """Session cookies made the way the login handler makes them, after the hub stored its secret."""
    redis = redis_client(redis_url)
    try:
        secret = await redis.get(keys.SERVER_SECRET)
        if not secret:
            raise RuntimeError("the hub has not stored its shared secret in Redis yet")
        rt = Runtime(settings=Settings(), config=parse_config(BENCH_CONFIG), redis=redis, secret=secret)
        from agents.accounts import load_account

        cookies = {}
        for username in usernames:
            account = await load_account(redis, username)
            cookie, _session = await open_session(rt, account)
            cookies[username] = cookie
        return cookies
    finally:
        await redis.aclose()


async def enqueue_direct(redis_url: str, count: int, lang: str = "en", batch: int = 2000) -> float:
    """Put ``count`` waiting chats into the queue without sockets, older than any socket
    opened afterwards (so they sit ahead of them in line). Returns the seconds it took.

    The first one goes through the real chat.chats.create_chat_on (the chat's writes of a
    hello, lifecycle.open_chat) and chat.queue.Queue.enqueue; its stored route is read back
    and used as the template for the rest, which are written in bulk (one pipeline per
    batch: the chats' hashes as create_chat_on writes them, by one Lua
    loop, then the route hash and the three queue sorted sets of Queue.enqueue, many members
    per command; key names from chat.keys), because
    one module call per chat costs ~1 ms of client CPU and 100,000 of them would take minutes.
    No resume tokens (nobody resumes these) and no max-wait timers (the bench's plans wait a
    day). This is fixture loading, not a measurement: Redis's fsync policy is relaxed to "no"
    meanwhile and put back afterwards. No "queue changed" doorbell: every agent is full."""
    redis = Redis.from_url(redis_url)
    t0 = time.monotonic()
    plan = parse_config(BENCH_CONFIG).lowest_plan
    queue = Queue(redis)
    topic = topic_key("", False)
    current = await redis.config_get("appendfsync")
    policy = next(iter(current.values()), "always")
    policy = policy.decode() if isinstance(policy, bytes) else policy
    await redis.config_set("appendfsync", "no")
    try:
        now = time.time()
        first_fields = _chat_fields(plan, 0, lang, now)
        first_id = chats.new_chat_id()
        async with redis.pipeline(transaction=False) as pipe:
            chats.create_chat_on(pipe, first_id, first_fields, 86400)
            await pipe.execute()
        score = virtual_arrival(now, plan)
        await queue.enqueue(first_id, lang=lang, topic=topic, plan=plan.name, score=score, arrived_at=now, emergency=False)
        template = await queue.route(first_id)
        if not template:
            raise RuntimeError("Queue.enqueue stored no route: the bench's bulk loader needs updating")
        for start in range(1, count, batch):
            n = min(batch, count - start)
            now = time.time()
            score = virtual_arrival(now, plan)
            route = msgpack.packb({**template, "score": score, "arrived_at": now})
            ids = [chats.new_chat_id() for _ in range(n)]
            fields = [x for kv in _clean(_chat_fields(plan, start, lang, now)).items() for x in kv]
            async with redis.pipeline(transaction=False) as pipe:
                pipe.eval(_HSET_EACH, n, *(keys.chat(chat_id) for chat_id in ids), *fields)
                pipe.hset(keys.ROUTE, mapping={chat_id: route for chat_id in ids})
                members = {chat_id: score for chat_id in ids}
                pipe.zadd(keys.QUEUE_ALL, members)
                pipe.zadd(keys.queue(lang), members)
                pipe.zadd(keys.queue(lang, topic), members)
                await pipe.execute()
        waiting = await redis.zcard(keys.QUEUE_ALL)
        if waiting < count:
            raise RuntimeError(f"only {waiting} of {count} chats are waiting after the bulk load")
        return time.monotonic() - t0
    finally:
        await redis.config_set("appendfsync", policy)
        await redis.aclose()


# The same field list into many hashes in one call (the loop runs inside Redis).
_HSET_EACH = "for i = 1, #KEYS do redis.call('HSET', KEYS[i], unpack(ARGV)) end return #KEYS"


def _chat_fields(plan: Any, i: int, lang: str, now: float) -> dict[str, Any]:
    """The chat hash a visitor's hello makes (chat/visitor_socket.py), for a queued chat."""
    return {
        "site": "default", "plan": plan.name, "verified": False, "sub": "", "name": f"Queued {i}", "email": "",
        "lang": lang, "topic": "", "page": "", "emergency": False, "created_at": repr(now), "arrived_at": repr(now),
        "score": repr(virtual_arrival(now, plan)), "visitor_msgs": 0, "status": "queued",
    }


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: ("1" if v is True else "0" if v is False else "" if v is None else v) for k, v in fields.items()}
