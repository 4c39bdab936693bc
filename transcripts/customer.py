"""The customer's side of a ticket: a private page (/t/{ref}/{token}) to follow it and add to
it without an account.

The link is signed and revocable (transcripts/customer_link.py). A wrong, revoked or unknown
link gets the same 404 as a ticket that does not exist, so the page never tells whether a
reference is in use. The page needs no cookie and no script (a plain form posts a reply),
and is served under a CSP as strict as the dashboard's. Tokens appear in no log line: the
hub's access log is off (chat/cli.py) and nothing here logs a path.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from chat import frames, keys, windows
from chat.runtime import Runtime
from transcripts import desk
from transcripts.customer_link import TEXTS, promise, texts, token_ok
from transcripts.inbound import clean_line
from transcripts.refs import normalize_ref
from transcripts.tickets import load_ticket
from transcripts.templating import render

RATE_WINDOW = 60  # seconds: [limits] ticket_requests_per_minute counts per window
MAX_FORM_BYTES = 128 * 1024  # a reply form (the text is capped at desk.MAX_REPLY_CHARS)
MAX_FILES = 10               # files attached to one reply (within [mail_in] attachment_bytes in all)
# never a note: internal notes stay inside
PUBLIC_KINDS = (frames.THREAD_CHAT, frames.THREAD_MAIL_IN, frames.THREAD_MAIL_OUT, frames.THREAD_WEB_IN,
                frames.THREAD_WIDGET_IN)

CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # the token is in the address: never sent on to another site
    "X-Robots-Tag": "noindex, nofollow",
}

# --- the page -----------------------------------------------------------------------------



async def request_allowed(request: Request) -> bool:
    """Count one request against [limits] ticket_requests_per_minute for the client address
    (shared by every hub through Redis). Loopback is not limited (a local tool, or a proxy
    that passes no address, when every customer would share one allowance)."""
    rt: Runtime = request.app.state.rt
    host = request.client.host if request.client else ""
    return await windows.address_within(rt.redis, rt.secret, host, "ticket", keys.ticket_requests,
                                        rt.config.limits.ticket_requests_per_minute, RATE_WINDOW)


def public_messages(ticket: dict[str, Any]) -> list[dict[str, Any]]:
    """The thread as the customer may see it: no internal note, ever."""
    return [m for m in desk.messages(ticket) if m["kind"] in PUBLIC_KINDS]


def _not_found() -> Response:
    words = TEXTS["en"]
    body = render("customer_error.html", title=words["notfound"], text=words["notfound_text"])
    return HTMLResponse(body, 404, headers=PAGE_HEADERS)


def _busy(lang: str | None = None) -> Response:
    words = texts(lang)
    return HTMLResponse(render("customer_error.html", title="429", text=words["busy"]), 429,
                        headers={**PAGE_HEADERS, "Retry-After": str(RATE_WINDOW)})


async def _ticket_for(request: Request) -> dict[str, Any] | None:
    """The ticket this link opens, or None for any wrong, revoked or unknown link."""
    rt: Runtime = request.app.state.rt
    ref = normalize_ref(request.path_params["ref"])
    token = request.path_params["token"]
    if ref is None or not token or len(token) > 64:
        return None
    ticket = await load_ticket(rt.redis, ref)
    if ticket is None or not token_ok(rt.secret, ticket, token):
        return None
    return ticket


def _page(rt: Runtime, ticket: dict[str, Any], notice: str = "", status: int = 200, text: str = "") -> Response:
    words = texts(ticket.get("lang"))
    name = ticket.get("name") or ""
    rows = []
    for m in public_messages(ticket):
        mine = m["kind"] in frames.CUSTOMER_KINDS or (m["kind"] == frames.THREAD_CHAT and m["from"] == frames.FROM_VISITOR)
        rows.append({"mine": mine, "who": words["you"] if mine else (m.get("name") or words["support"]),
                     "text": m["text"], "ts": m["ts"], "kind": m["kind"],
                     "files": [a["name"] for a in m.get("attachments", [])]})
    body = render("customer_ticket.html", w=words, ref=ticket["ref"], lang=_lang(ticket), status=ticket.get("status", frames.TICKET_OPEN),
                  subject=ticket.get("subject") or "", name=name, rows=rows, notice=notice, text=text,
                  promise=promise(rt.config, ticket) if ticket.get("status") != frames.TICKET_SOLVED else "",
                  style=_style_url())
    return HTMLResponse(body, status, headers=PAGE_HEADERS)


def _lang(ticket: dict[str, Any]) -> str:
    lang = (ticket.get("lang") or "en").split("-")[0].lower()
    return lang if lang in TEXTS else "en"


def _style_url() -> str:
    from agents.views import _static_url

    return _static_url("ticket-page.css")


async def ticket_page(request: Request) -> Response:
    """GET /t/{ref}/{token}: the thread without notes, the status, when to expect an answer,
    and a reply form."""
    if not await request_allowed(request):
        return _busy()
    ticket = await _ticket_for(request)
    if ticket is None:
        return _not_found()
    notice = texts(ticket.get("lang"))["sent"] if request.query_params.get("sent") == "1" else ""
    return _page(request.app.state.rt, ticket, notice)


async def _reply_form(request: Request, raw: bytes) -> tuple[str, list[tuple[dict[str, Any], bytes]]]:
    """The reply form's text and files (a plain form, or multipart with files); the body was
    read and capped by the caller."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return (parse_qs(raw.decode("utf-8", "replace")).get("text") or [""])[0], []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    form = await Request(request.scope, receive).form(max_files=MAX_FILES, max_fields=5)
    text = form.get("text")
    files = []
    for upload in form.getlist("files"):
        if isinstance(upload, str) or not upload.filename:
            continue  # the empty file field of a form sent without a file
        data = await upload.read()
        name = clean_line(upload.filename, 150).replace("/", "_").replace("\\", "_") or "attachment"
        files.append(({"name": name, "type": clean_line(upload.content_type or "", 100), "size": len(data)}, data))
    return (text if isinstance(text, str) else ""), files


async def ticket_page_reply(request: Request) -> Response:
    """POST /t/{ref}/{token} (form field `text`): the customer's message joins the thread
    (kind `web_in`) and puts the ticket back on our side, as a mail would; then back to the
    page (303), so a reload does not send it twice."""
    if not await request_allowed(request):
        return _busy()
    ticket = await _ticket_for(request)
    if ticket is None:
        return _not_found()
    rt: Runtime = request.app.state.rt
    words = texts(ticket.get("lang"))
    cap = MAX_FORM_BYTES + rt.config.mail_in.attachment_bytes  # the text, and the files a mail may bring
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > cap):
        return _page(rt, ticket, words["long"], 413)
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > cap:
            return _page(rt, ticket, words["long"], 413)
    text, files = await _reply_form(request, raw)
    try:
        await desk.add_customer_message(rt, ticket["ref"], text, frames.THREAD_WEB_IN, files)
    except desk.TicketError as exc:
        if exc.status == 404:
            return _not_found()
        problem = {400: "empty", 409: "closed"}.get(exc.status, "long")
        return _page(rt, ticket, words[problem], exc.status, text[:desk.MAX_REPLY_CHARS])
    return RedirectResponse(str(request.url.path) + "?sent=1", 303, headers=PAGE_HEADERS)


routes = [
    Route("/t/{ref}/{token}", ticket_page, methods=["GET"]),
    Route("/t/{ref}/{token}", ticket_page_reply, methods=["POST"]),
]
