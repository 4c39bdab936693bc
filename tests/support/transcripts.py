"""The transcripts tests' Runtime (tickets, mail, export) and chats opened through it.

These tests use their own Redis database on the session's real redis-server (DB below),
emptied before each test by the ``tdb`` fixture: the outbox and the ticket indexes are global
keys, and a `livechat serve` started by other tests (database 0) drains its own outbox, so it
must never see ours.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from agents.accounts import Account, load_account
from chat import frames, lifecycle
from chat.chatlog import ChatLog
from chat.chats import new_chat_id
from chat.config import load_config
from chat.plans import virtual_arrival
from chat.queue import AgentSkills, write_agent
from chat.runtime import Runtime
from chat.settings import Settings
from transcripts.masking import mask
from tests.support.clients import create_agent
from tests.support.mail import MAIL_FROM, SUPPORT
from tests.support.redis import DATABASES, db_url

DB = DATABASES["transcripts"]  # this part's own Redis database (the hub and the core tests use 0)


# --- Redis and the runtime ---------------------------------------------------------


def make_runtime(redis_url: str, data_dir: Path, smtp_url: str | None = None, **settings: Any) -> Runtime:
    return Runtime(
        settings=Settings(smtp_url=smtp_url, data_dir=data_dir, support_address=SUPPORT, mail_from=MAIL_FROM, **settings),
        config=load_config(None),
        redis=Redis.from_url(db_url(redis_url, DB)),
        secret=b"x" * 32,
    )


# --- chats, as the hub makes them ------------------------------------------------------

AGENT = "sam"  # the agent (named Sam) who takes, answers and closes make_chat's chats


async def make_chat(
    rt: Runtime,
    messages: list[tuple[str, str]] = (("visitor", "Hello, I cannot log in."),),
    *,
    name: str = "Ada",
    email_address: str | None = "ada@example.org",
    status: str = frames.CHAT_OFFLINE,
    lang: str = "en",
    plan: str | None = None,
    verified: bool = False,
    emergency: bool = False,
) -> str:
    """A chat made by the functions the hub's sockets call, at rt.clock(): the visitor's hello
    opens it (lifecycle.open_chat, with the fields chat/visitor_socket.py _new_chat makes:
    verified, the site vouched for the name and address; emergency, as an escalated chat);
    offline (nobody could serve it), or queued and taken at once by the agent Sam (active);
    then the messages (sender, text) in order, stored as the visitor's and the agent's sockets
    store them; closed: Sam closes it as resolved."""
    if status not in (frames.CHAT_OFFLINE, frames.CHAT_ACTIVE, frames.CHAT_CLOSED):
        raise ValueError(f"make_chat makes offline, active or closed chats, not {status!r}")
    taken = status != frames.CHAT_OFFLINE
    if not taken and any(sender == frames.FROM_AGENT for sender, _ in messages):
        raise ValueError("no agent writes in an offline chat: make it active")
    now = rt.clock()
    chosen = rt.config.plan(plan) if plan else rt.config.lowest_plan
    fields: dict[str, Any] = {
        "site": "default", "plan": chosen.name, "verified": verified, "sub": "u-1" if verified else "",
        "name": name, "email": email_address or "", "lang": lang, "topic": "billing",
        "page": "https://example.org/pricing", "emergency": emergency, "created_at": repr(now), "arrived_at": repr(now),
        "score": repr(virtual_arrival(now, chosen, rt.config.emergency_head_start if emergency else None)),
        "visitor_msgs": 0,
        **({"status": frames.CHAT_QUEUED} if taken
           else {"status": frames.CHAT_OFFLINE, "offline_reason": frames.OFFLINE_NO_AGENTS}),
    }
    chat_id = new_chat_id()
    await lifecycle.open_chat(rt, chat_id, fields, int(rt.config.retention_days * 86400) or 86400)
    agent = await _agent_online(rt, lang) if taken else None
    if agent is not None:  # the hub's dispatch: a claim, then its record (chat/hub.py assign_claimed)
        claimed = await rt.queue.claim(AgentSkills(agent.username, agent.langs, agent.topics, agent.max_chats), rt.clock())
        if claimed != chat_id:
            raise AssertionError(f"{agent.username} claimed {claimed}, not the new chat {chat_id}")
        await lifecycle.assigned(rt, chat_id, agent.username, agent.name)
    log, limits = ChatLog(rt.redis), rt.config.limits
    for sender, text in messages:
        if sender == frames.FROM_AGENT:
            await log.append(chat_id, sender, mask(text), rt.clock(), secrets.token_hex(8), agent.name,
                             holder=agent.username)
        else:
            await log.append(chat_id, sender, mask(text), rt.clock(), secrets.token_hex(8),
                             max_messages=limits.visitor_messages_per_chat, max_bytes=limits.visitor_bytes_per_chat)
    if status == frames.CHAT_CLOSED:
        await lifecycle.close(rt, chat_id, frames.CLOSED_RESOLVED, holder=agent.username)
    return chat_id


async def _agent_online(rt: Runtime, lang: str) -> Account:
    """Sam's account (made once a test), online for the chat's language, as Sam's socket
    announces itself (chat/agent_socket.py start and its status frame)."""
    account = await load_account(rt.redis, AGENT)
    if account is None or lang not in account.langs:
        await create_agent(rt.redis, AGENT, sorted({lang, *(account.langs if account else ())}), name="Sam", max_chats=50)
        account = await load_account(rt.redis, AGENT)
    await write_agent(rt.redis, account.username, {**account.profile(), "status": frames.AGENT_ONLINE})
    return account
