"""The widget's ticket calls: "I have a reference" (a fresh private link mailed to the
ticket's own address), and a verified customer's open tickets with a way to add a message.

Cross-origin calls from the customer's site: POST with a text/plain JSON body, so that no
CORS preflight is needed, answered with `Access-Control-Allow-Origin: *` (no cookie is ever
involved). "I have a reference" answers the same neutral text whatever it finds, and mails
only the address the ticket was opened with: knowing a reference shows nobody a thread. A
verified customer proves who they are with the site's identity token (chat/identity.py);
their tickets are the ones opened with the token's email.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chat import frames, keys, windows
from chat.identity import IdentityError, verify
from chat.runtime import Runtime
from transcripts import desk
from transcripts.contact import email_hash, is_mailable, normalize_email
from transcripts.customer import public_messages, request_allowed
from transcripts.customer_link import page_link, promise
from transcripts.mailer import page_link_mail
from transcripts.refs import normalize_ref
from transcripts.tickets import _confirmation_allowed, add_mails, load_ticket

HEADERS = {"Access-Control-Allow-Origin": "*", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
MAX_BODY = 32 * 1024
LINK_WINDOW = 3600  # seconds: [limits] ticket_links_per_hour counts per window
NEUTRAL = {
    "en": "If this reference belongs to this address, we have mailed a link to it.",
    "fr": "Si cette référence correspond à cette adresse, nous lui avons envoyé un lien.",
}
SHOWN_TICKETS = 10


def _error(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status, headers=HEADERS)


async def _body(request: Request) -> dict[str, Any] | JSONResponse:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            return _error(frames.TOO_LONG, f"the body is larger than {MAX_BODY} bytes", 413)
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        return _error(frames.BAD_FRAME, "the body must be a JSON object", 400)
    return body


async def _links_allowed(rt: Runtime, host: str) -> bool:
    """Count one "I have a reference" request for the client address ([limits]
    ticket_links_per_hour, a salted hash of the address in Redis; loopback is exempt)."""
    return await windows.address_within(rt.redis, rt.secret, host, "links", keys.ticket_links,
                                        rt.config.limits.ticket_links_per_hour, LINK_WINDOW)


async def ticket_link(request: Request) -> Response:
    """POST /api/widget/ticket-link {"ref", "email", "lang"}: mails the ticket's private link
    to its address if (and only if) both match; the same 202 and text either way."""
    rt: Runtime = request.app.state.rt
    host = request.client.host if request.client else ""
    if not await _links_allowed(rt, host):
        return _error(frames.RATE_LIMITED, "too many link requests from your address: try again in an hour", 429)
    body = await _body(request)
    if isinstance(body, Response):
        return body
    lang = body.get("lang") if body.get("lang") in NEUTRAL else "en"
    ref = normalize_ref(body.get("ref")) if isinstance(body.get("ref"), str) else None
    email = normalize_email(body.get("email")) if isinstance(body.get("email"), str) else ""
    ticket = await load_ticket(rt.redis, ref) if ref and email else None
    if (ticket is not None and is_mailable(ticket.get("email")) and normalize_email(ticket["email"]) == email
            and await _confirmation_allowed(rt, email)):
        token = secrets.token_hex(6)
        mail = await asyncio.to_thread(page_link_mail, ticket, token, rt.settings, page_link(rt, ticket),
                                       promise(rt.config, ticket))
        await add_mails(rt.redis, ticket["ref"], [mail], rt.clock())
    return JSONResponse({"message": NEUTRAL[lang]}, 202, headers=HEADERS)


async def _customer(request: Request) -> tuple[str, dict[str, Any]] | Response:
    """The verified customer's email (from the identity token in the body), and the body."""
    rt: Runtime = request.app.state.rt
    if not await request_allowed(request):
        return _error(frames.RATE_LIMITED, "too many ticket requests from your address: try again in a minute", 429)
    body = await _body(request)
    if isinstance(body, Response):
        return body
    try:
        identity = verify(rt.settings.site_secret, body.get("identity"), rt.config.plans, rt.clock(),
                          rt.config.limits.identity_max_ttl)
    except IdentityError as exc:
        return _error(frames.BAD_IDENTITY, f"identity not accepted ({exc})", 401)
    email = normalize_email(identity.email)
    if not is_mailable(email):
        return _error(frames.BAD_IDENTITY, "the identity token names no email address", 401)
    return email, body


async def _own_tickets(rt: Runtime, email: str) -> list[dict[str, Any]]:
    refs = [r.decode() for r in await rt.redis.smembers(keys.tickets_by_email(email_hash(email)))]
    found = []
    for ref in refs:
        ticket = await load_ticket(rt.redis, ref)
        if ticket and ticket.get("status") != frames.TICKET_SOLVED and normalize_email(ticket.get("email")) == email:
            found.append(ticket)
    found.sort(key=lambda t: t.get("updated_at") or 0, reverse=True)
    return found[:SHOWN_TICKETS]


def _summary(ticket: dict[str, Any], rt: Runtime) -> dict[str, Any]:
    return {"ref": ticket["ref"], "subject": ticket.get("subject") or "", "status": ticket.get("status"),
            "created_at": ticket.get("created_at"), "updated_at": ticket.get("updated_at"),
            "promise": promise(rt.config, ticket) if ticket.get("status") == frames.TICKET_OPEN else "",
            "messages": [{k: m.get(k) for k in ("kind", "from", "name", "text", "ts")} for m in public_messages(ticket)]}


async def my_tickets(request: Request) -> Response:
    """POST /api/widget/tickets {"identity"}: the verified customer's tickets that are not
    solved (at most 10, latest first), each with its thread (no notes)."""
    found = await _customer(request)
    if isinstance(found, Response):
        return found
    email, _ = found
    rt: Runtime = request.app.state.rt
    return JSONResponse({"tickets": [_summary(t, rt) for t in await _own_tickets(rt, email)]}, headers=HEADERS)


async def my_ticket_message(request: Request) -> Response:
    """POST /api/widget/tickets/{ref}/messages {"identity", "text"}: a message from the
    verified customer into one of their tickets (kind `widget_in`); it reopens the ticket."""
    found = await _customer(request)
    if isinstance(found, Response):
        return found
    email, body = found
    rt: Runtime = request.app.state.rt
    ref = normalize_ref(request.path_params["ref"])
    ticket = await load_ticket(rt.redis, ref) if ref else None
    if ticket is None or normalize_email(ticket.get("email")) != email:
        return _error(frames.NOT_FOUND, "no such ticket", 404)
    text = body.get("text")
    if not isinstance(text, str):
        return _error(frames.BAD_FRAME, "text must be a string", 400)
    try:
        await desk.add_customer_message(rt, ticket["ref"], text, frames.THREAD_WIDGET_IN)
    except desk.TicketError as exc:
        code = frames.NOT_FOUND if exc.status == 404 else frames.TOO_LONG if exc.status == 413 else frames.BAD_FRAME
        return _error(code, exc.message, exc.status)
    ticket = await load_ticket(rt.redis, ticket["ref"])
    return JSONResponse(_summary(ticket, rt), 201, headers=HEADERS)


routes = [
    Route("/api/widget/ticket-link", ticket_link, methods=["POST"]),
    Route("/api/widget/tickets", my_tickets, methods=["POST"]),
    Route("/api/widget/tickets/{ref}/messages", my_ticket_message, methods=["POST"]),
]
