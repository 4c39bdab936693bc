"""Supervisors' ticket endpoints: GET /api/tickets (paged list) and GET /api/tickets/{ref}
(one ticket with its transcript). JSON by default; a readable HTML page when the request
prefers text/html (a browser following a link from the inbox mail)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from agents.sessions import read_session
from transcripts.refs import normalize_ref
from transcripts.templating import render, transcript_rows
from transcripts.tickets import STATUSES, list_tickets, load_ticket

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


async def _supervisor(request: Request) -> Response | None:
    """None when a supervisor is logged in, else the 401/403 response to send."""
    session = await read_session(request.app.state.rt, request.cookies)
    if session is None:
        return _error(request, 401, "log in as a supervisor")
    if not session.is_supervisor:
        return _error(request, 403, "supervisors only")
    return None


async def ticket_detail(request: Request) -> Response:
    if (refused := await _supervisor(request)) is not None:
        return refused
    ref = normalize_ref(request.path_params["ref"])
    ticket = await load_ticket(request.app.state.rt.redis, ref) if ref else None
    if ticket is None:
        return _error(request, 404, "no such ticket")
    if prefers_html(request.headers.get("accept", "")):
        rows = transcript_rows(ticket["transcript"], ticket.get("name", ""))
        context: dict[str, Any] = {**ticket, "rows": rows, "link": ""}
        return HTMLResponse(render("ticket_page.html", **context), headers=HTML_HEADERS)
    return JSONResponse(ticket, headers=HEADERS)


async def ticket_list(request: Request) -> Response:
    if (refused := await _supervisor(request)) is not None:
        return refused
    params = request.query_params
    status = params.get("status") or None
    try:
        page = int(params.get("page", "1"))
        per_page = int(params.get("per_page", "50"))
        if page < 1 or not 1 <= per_page <= 200:
            raise ValueError
    except ValueError:
        return _error(request, 400, "page must be 1 or more, per_page from 1 to 200")
    if status is not None and status not in STATUSES:
        return _error(request, 400, f"status must be one of {', '.join(STATUSES)}")
    result = await list_tickets(request.app.state.rt.redis, page, per_page, status)
    if prefers_html(request.headers.get("accept", "")):
        return HTMLResponse(render("tickets_page.html", statuses=STATUSES, **result), headers=HTML_HEADERS)
    return JSONResponse(result, headers=HEADERS)


routes = [
    Route("/api/tickets", ticket_list, methods=["GET"]),
    Route("/api/tickets/{ref}", ticket_detail, methods=["GET"]),
]
