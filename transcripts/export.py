"""Export one conversation (a chat by id, or a ticket by reference) as readable text or JSON,
for a visitor's access request or an agent's records.

The argument is only ever a Redis key suffix after it matched a strict pattern: a reference
(refs.REF_PATTERN) or a chat id (URL-safe base64 characters). Anything else, such as
"../../etc/passwd", is refused before it reaches Redis or the file system.
"""

from __future__ import annotations

import json
import re
from typing import Any

from redis.asyncio import Redis

from chat.chatlog import read_log
from chat.chats import load_chat
from transcripts.refs import normalize_ref
from transcripts.templating import TRIGGER_WORDING, render, transcript_rows, utc
from transcripts.tickets import load_ticket

CHAT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{6,64}$")  # chat.chats.new_chat_id: token_urlsafe
FORMATS = ("txt", "json")
_VISITOR_FIELDS = ("name", "email", "verified", "plan", "lang", "topic", "page", "emergency")


class BadTarget(ValueError):
    """Neither a ticket reference nor a chat id."""


def parse_target(text: str) -> tuple[str, str]:
    """("ticket", REF) or ("chat", CHAT_ID); BadTarget for anything else."""
    ref = normalize_ref(text)
    if ref:
        return "ticket", ref
    if isinstance(text, str) and CHAT_ID_PATTERN.match(text):
        return "chat", text
    raise BadTarget("expected a ticket reference (LC-XXXXXX) or a chat id (letters, digits, '-' and '_')")


async def find_conversation(redis: Redis, target: str) -> dict[str, Any] | None:
    """The exportable document for a chat id or ticket reference, or None if unknown."""
    kind, key = parse_target(target)
    if kind == "ticket":
        ticket = await load_ticket(redis, key)
        if ticket is None:
            return None
        return {
            "kind": "ticket",
            "ref": ticket["ref"],
            "chat_id": ticket.get("chat_id", ""),
            "status": ticket.get("status", ""),
            "trigger": ticket.get("trigger", ""),
            "created_at": ticket.get("created_at"),
            "updated_at": ticket.get("updated_at"),
            "visitor": {f: ticket.get(f, "") for f in _VISITOR_FIELDS},
            "agent_name": ticket.get("agent_name", ""),
            "messages": ticket.get("transcript", []),
        }
    chat = await load_chat(redis, key)
    if chat is None:
        return None
    visitor: dict[str, Any] = {f: chat.get(f, "") for f in _VISITOR_FIELDS}
    visitor["verified"] = chat.get("verified") == "1"
    visitor["emergency"] = chat.get("emergency") == "1"
    return {
        "kind": "chat",
        "chat_id": key,
        "ref": chat.get("ticket", ""),
        "status": chat.get("status", ""),
        "closed_reason": chat.get("closed_reason", ""),
        "created_at": _float(chat.get("created_at")),
        "closed_at": _float(chat.get("closed_at")),
        "visitor": visitor,
        "agent_name": chat.get("agent_name", ""),
        "messages": await read_log(redis, key),
    }


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def render_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=False) + "\n"


def render_txt(doc: dict[str, Any]) -> str:
    v = doc["visitor"]
    lines = []
    if doc["kind"] == "ticket":
        lines.append(f"Ticket {doc['ref']} ({doc['status']}), chat {doc['chat_id']}")
        lines.append(f"Opened {utc(doc.get('created_at'))}: the visitor {TRIGGER_WORDING.get(doc['trigger'], doc['trigger'])}.")
    else:
        lines.append(f"Chat {doc['chat_id']} ({doc['status']}{', ' + doc['closed_reason'] if doc.get('closed_reason') else ''})"
                     + (f", ticket {doc['ref']}" if doc.get("ref") else ""))
        lines.append(f"Started {utc(doc.get('created_at')) or '-'}, closed {utc(doc.get('closed_at')) or '-'}")
    verified = "verified" if v.get("verified") else "not verified"
    lines.append(f"Visitor: {v.get('name') or '(no name)'} <{v.get('email') or 'no email'}>, {verified}, plan {v.get('plan') or '-'}")
    lines.append(f"Language {v.get('lang') or '-'}, topic {v.get('topic') or '-'}, page {v.get('page') or '-'}")
    if doc.get("agent_name"):
        lines.append(f"Agent: {doc['agent_name']}")
    header = "\n".join(lines)
    return header + "\n\n" + render("transcript.txt", rows=transcript_rows(doc["messages"], v.get("name", "")))


def render_doc(doc: dict[str, Any], fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    return render_json(doc) if fmt == "json" else render_txt(doc)
