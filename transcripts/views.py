"""The ticket API for agents and supervisors: the list (ordered by when the next answer is
due), one ticket with its whole conversation, answers and notes, status and assignee. JSON by
default; a readable HTML page when a GET prefers text/html (a browser following a link from
the inbox mail). Changes need the session's CSRF token in the X-CSRF-Token header."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from agents import csrf
from agents.accounts import load_account
from agents.sessions import Session, read_session
from chat import frames
from transcripts import desk
from transcripts.archive import earlier_chats
from transcripts.refs import normalize_ref
from transcripts.targets import breached
from transcripts.templating import render, transcript_rows
from transcripts.tickets import ORDERS, attachment, earlier_tickets, list_tickets, load_ticket

# Personal data: never cached, never framed, no scripts, no referrer leaks.
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
HTML_HEADERS = HEADERS | {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'none'",
}


def prefers_html(accept: str) -> bool:
    """True when the Accept header ranks text/html above application/json (browsers do;
    fetch() and curl send */* and get JSON)."""
    best = {"html": 0.0, "json": 0.0}
    for part in accept.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media in ("text/html", "application/xhtml+xml"):
            best["html"] = max(best["html"], q)
        elif media == "application/json":
            best["json"] = max(best["json"], q)
        elif media in ("*/*", "text/*"):
            if media == "*/*":
                best["json"] = max(best["json"], q * 0.999)
            best["html"] = max(best["html"], q * 0.999)
    return best["html"] > best["json"]


def _error(request: Request, status: int, message: str) -> Response:
    if prefers_html(request.headers.get("accept", "")):
        body = render("error_page.html", status=status, message=message, login=status == 401)
        return HTMLResponse(body, status, headers=HTML_HEADERS)
    return JSONResponse({"error": message}, status, headers=HEADERS)


async def _session(request: Request) -> Session | Response:
    """The signed-in agent or supervisor, or the 401 response to send."""
    session = await read_session(request.app.state.rt, request.cookies)
    if session is None:
        return _error(request, 401, "log in first")
    return session


INTERNAL_FIELDS = ("rev", "mail_fingerprint", "fingerprint_ttl")  # the store's bookkeeping, not the ticket's


def _detail(ticket: dict[str, Any], now: float) -> dict[str, Any]:
    ticket = {k: v for k, v in ticket.items() if k not in INTERNAL_FIELDS}
    return {**ticket, "breached": breached(ticket, now), "messages": desk.messages(ticket)}


async def _with_history(rt: Any, detail: dict[str, Any]) -> dict[str, Any]:
    """The customer panel's earlier tickets: only for a verified customer (an address typed
    into the widget proves nothing, and must not show someone else's tickets)."""
    previous: list[dict[str, Any]] = []
    chats: list[dict[str, Any]] = []
    if detail.get("verified") and detail.get("sub"):
        earlier = await earlier_tickets(rt.redis, detail["sub"], detail.get("email", ""), 11)
        previous = [t for t in earlier["verified"] if t["ref"] != detail["ref"]][:10]
        chats = [c for c in await earlier_chats(rt.redis, detail["sub"], detail.get("email", ""), 11)
                 if c["chat_id"] != detail.get("chat_id")][:10]
    return {**detail, "previous": previous, "previous_chats": chats}


async def ticket_detail(request: Request) -> Response:
    session = await _session(request)
    if not isinstance(session, Session):
        return session
    rt = request.app.state.rt
    ref = normalize_ref(request.path_params["ref"])
    ticket = await load_ticket(rt.redis, ref) if ref else None
    if ticket is None:
        return _error(request, 404, "no such ticket")
    if prefers_html(request.headers.get("accept", "")):
        rows = transcript_rows(ticket["transcript"], ticket.get("name", ""))
        context: dict[str, Any] = {**ticket, "rows": rows, "link": ""}
        return HTMLResponse(render("ticket_page.html", **context), headers=HTML_HEADERS)
    return JSONResponse(await _with_history(rt, _detail(ticket, rt.clock())), headers=HEADERS)


async def ticket_list(request: Request) -> Response:
    session = await _session(request)
    if not isinstance(session, Session):
        return session
    params = request.query_params
    status = params.get("status") or None
    try:
        page = int(params.get("page", "1"))
        per_page = int(params.get("per_page", "50"))
        if page < 1 or not 1 <= per_page <= 200:
            raise ValueError
    except ValueError:
        return _error(request, 400, "page must be 1 or more, per_page from 1 to 200")
    if status is not None and status not in frames.TICKET_STATUSES:
        return _error(request, 400, f"status must be one of {', '.join(frames.TICKET_STATUSES)}")
    order = params.get("sort", "due")
    if order not in ORDERS:
        return _error(request, 400, f"sort must be one of {', '.join(ORDERS)}")
    assignee = params.get("assignee")
    if assignee == "me":
        assignee = session.username
    elif assignee == "none":
        assignee = ""
    rt = request.app.state.rt
    result = await list_tickets(rt.redis, page, per_page, status, assignee=assignee,
                                plan=params.get("plan") or None, q=params.get("q") or None, order=order)
    now = rt.clock()
    for ticket in result["tickets"]:
        ticket["breached"] = breached(ticket, now)
    if prefers_html(request.headers.get("accept", "")):
        return HTMLResponse(render("tickets_page.html", statuses=frames.TICKET_STATUSES, **result), headers=HTML_HEADERS)
    return JSONResponse(result, headers=HEADERS)


async def _change(request: Request) -> tuple[Session, str, dict[str, Any]] | Response:
    """The session, reference and JSON body of a change, or the error response."""
    session = await _session(request)
    if not isinstance(session, Session):
        return session
    if not csrf.session_token_ok(session.csrf, request.headers.get(csrf.HEADER)):
        return JSONResponse({"error": "missing or wrong CSRF token"}, 403, headers=HEADERS)
    ref = normalize_ref(request.path_params["ref"])
    if ref is None:
        return JSONResponse({"error": "no such ticket"}, 404, headers=HEADERS)
    try:
        body = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        return JSONResponse({"error": "the body must be a JSON object"}, 400, headers=HEADERS)
    return session, ref, body


async def ticket_message(request: Request) -> Response:
    """POST /api/tickets/{ref}/messages {"text", "internal", "status"}: an answer (mailed,
    threaded; the ticket becomes pending unless `status` says otherwise) or an internal note."""
    change = await _change(request)
    if isinstance(change, Response):
        return change
    session, ref, body = change
    text, internal, status = body.get("text"), body.get("internal", False), body.get("status")
    if not isinstance(text, str) or not isinstance(internal, bool) or not (status is None or isinstance(status, str)):
        return JSONResponse({"error": "text (string), internal (true/false), status (optional)"}, 400, headers=HEADERS)
    rt = request.app.state.rt
    account = await load_account(rt.redis, session.username)
    author = {"username": session.username, "name": account.name if account else session.username}
    try:
        entry = await desk.reply(rt, ref, author, text, internal, status)
    except desk.TicketError as exc:
        return JSONResponse({"error": exc.message}, exc.status, headers=HEADERS)
    ticket = await load_ticket(rt.redis, ref)
    message = desk.messages(ticket)[-1] if ticket else entry
    return JSONResponse(message, 201, headers=HEADERS)


async def ticket_update(request: Request) -> Response:
    """PATCH /api/tickets/{ref} {"status": …, "assignee": …} ("" for nobody)."""
    change = await _change(request)
    if isinstance(change, Response):
        return change
    session, ref, body = change
    status, assignee = body.get("status"), body.get("assignee")
    if not (status is None or isinstance(status, str)) or not (assignee is None or isinstance(assignee, str)):
        return JSONResponse({"error": "status and assignee must be strings"}, 400, headers=HEADERS)
    rt = request.app.state.rt
    try:
        ticket = await desk.update(rt, ref, status, assignee)
    except desk.TicketError as exc:
        return JSONResponse({"error": exc.message}, exc.status, headers=HEADERS)
    return JSONResponse(_detail(ticket, rt.clock()), headers=HEADERS)


async def ticket_attachment(request: Request) -> Response:
    """GET /api/tickets/{ref}/attachments/{id}: a file a customer mailed, as a download only
    (never shown inline: a mailed HTML or SVG file must not run in the desk's origin)."""
    session = await _session(request)
    if not isinstance(session, Session):
        return session
    ref = normalize_ref(request.path_params["ref"])
    found = await attachment(request.app.state.rt.redis, ref, request.path_params["file_id"]) if ref else None
    if found is None:
        return _error(request, 404, "no such attachment")
    meta, data = found
    name = meta.get("name") or "attachment"
    ascii_name = "".join(c if c.isalnum() or c in "._- " else "_" for c in name)[:100] or "attachment"
    return Response(data, media_type="application/octet-stream", headers=HEADERS | {
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    })


async def ticket_revoke_link(request: Request) -> Response:
    """POST /api/tickets/{ref}/link/revoke: every private link of the ticket stops working
    (the customer's next mail carries a new one)."""
    change = await _change(request)
    if isinstance(change, Response):
        return change
    _, ref, _ = change
    rt = request.app.state.rt
    try:
        ticket = await desk.revoke_link(rt, ref)
    except desk.TicketError as exc:
        return JSONResponse({"error": exc.message}, exc.status, headers=HEADERS)
    return JSONResponse({"ref": ref, "link_version": int(ticket.get("link_version") or 0)}, headers=HEADERS)


routes = [
    Route("/api/tickets", ticket_list, methods=["GET"]),
    Route("/api/tickets/{ref}", ticket_detail, methods=["GET"]),
    Route("/api/tickets/{ref}", ticket_update, methods=["PATCH"]),
    Route("/api/tickets/{ref}/messages", ticket_message, methods=["POST"]),
    Route("/api/tickets/{ref}/attachments/{file_id}", ticket_attachment, methods=["GET"]),
    Route("/api/tickets/{ref}/link/revoke", ticket_revoke_link, methods=["POST"]),
]
