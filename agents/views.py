"""The agent's and supervisor's HTTP side: login and logout, the dashboard and supervisor
pages, and the small JSON APIs their scripts use (queue snapshot, agents, canned replies).

Pages are Jinja2 templates with autoescaping on; they carry no inline script or style, so a
strict Content-Security-Policy holds (scripts and styles only from /agent/static/).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from agents import canned, csrf, login_limit
from agents.accounts import check_password, list_accounts
from agents.sessions import COOKIE, Session, close_session, open_session, read_session
from chat import frames, reports
from chat.runtime import Runtime
from chat.snapshot import list_agents, queue_snapshot

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATES_DIR = HERE / "templates"
MAX_PASSWORD_CHARS = 1024

_env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=True, auto_reload=False)


_versions: dict[tuple[str, float], str] = {}


def _static_url(name: str) -> str:
    """URL of a static file with a content hash, so browsers never run a stale script."""
    path = STATIC_DIR / name
    try:
        stamp = (name, path.stat().st_mtime)
        if stamp not in _versions:
            _versions[stamp] = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
        version = _versions[stamp]
    except OSError:
        version = "0"
    return f"/agent/static/{name}?v={version}"


_env.globals["static"] = _static_url


class _StaticFiles(StaticFiles):
    """The dashboard's scripts and styles. Its ES modules import each other by plain URLs
    (desk/view.js, with no version in them, unlike the pages' `static()` links), so a browser
    must ask again each time (`no-cache`: a 304 when unchanged), or a new agent.js could run
    with an old desk/view.js from its cache."""

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def _csp(request: Request) -> str:
    """Strict policy: our own scripts, styles and sockets only; no framing, no plugins."""
    host = request.url.netloc
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' ws://{host} wss://{host}; font-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(**context)
    response = HTMLResponse(html, status_code=status)
    response.headers.update(
        {
            "Content-Security-Policy": _csp(request),
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store",
        }
    )
    return response


def _rt(request: Request) -> Runtime:
    return request.app.state.rt


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _home(session: Session) -> str:
    return "/supervisor" if session.is_supervisor else "/agent"


# --- login and logout ------------------------------------------------------------


def _login_form(request: Request, status: int = 200, error: str = "", username: str = "") -> HTMLResponse:
    """The login page with a fresh double-submit token in a hidden field and a cookie."""
    token = csrf.new_login_token(_rt(request))
    response = _page(request, "login.html", status, csrf=token, error=error, username=username, field=csrf.FIELD)
    response.set_cookie(
        csrf.LOGIN_COOKIE, token, max_age=csrf.LOGIN_TOKEN_TTL, path="/agent/login",
        httponly=True, samesite="strict", secure=_secure(request),
    )
    return response


async def login_page(request: Request) -> Response:
    """GET /agent/login: the form (or straight home when already signed in)."""
    session = await read_session(_rt(request), request.cookies)
    if session:
        return RedirectResponse(_home(session), status_code=303)
    return _login_form(request)


async def login(request: Request) -> Response:
    """POST /agent/login: form fields username, password (+ csrf from a browser)."""
    rt = _rt(request)
    form = await request.form()
    username = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    token = form.get(csrf.FIELD)
    if not csrf.login_token_ok(rt, request.cookies.get(csrf.LOGIN_COOKIE), token if isinstance(token, str) else None):
        # A browser always sends Origin with a form post; only a bare client may skip the pair.
        if not csrf.is_bare_client(request):
            return _login_form(request, 403, "This form expired. Please sign in again.", username[:64])
    address = request.client.host if request.client else None
    attempt = await login_limit.begin(rt, username, address)
    if attempt.wait:
        busy = attempt.reason == "busy"
        message = ("Too many sign-ins at once. Please try again in a moment." if busy
                   else "Too many failed attempts. Please wait and try again.")
        response = _login_form(request, 429, message, username[:64])
        response.headers["Retry-After"] = str(attempt.wait)
        return response
    account = None
    try:
        if username and password and len(password) <= MAX_PASSWORD_CHARS:
            account = await check_password(rt.redis, username, password)
    finally:
        await login_limit.end(rt, attempt, account is not None)
    if account is None:
        return _login_form(request, 401, "Wrong username or password.", username[:64])
    cookie, session = await open_session(rt, account)
    response = RedirectResponse(_home(session), status_code=303)
    response.set_cookie(
        COOKIE, cookie, max_age=rt.settings.session_ttl, path="/",
        httponly=True, samesite="strict", secure=_secure(request),
    )
    response.delete_cookie(csrf.LOGIN_COOKIE, path="/agent/login")
    response.headers["Cache-Control"] = "no-store"
    return response


async def logout(request: Request) -> Response:
    """POST /agent/logout: ends the session (session CSRF token in the form) and clears the cookie."""
    rt = _rt(request)
    session = await read_session(rt, request.cookies)
    if session is None:
        response = RedirectResponse("/agent/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response
    form = await request.form()
    token = form.get(csrf.FIELD)
    if not csrf.session_token_ok(session.csrf, token if isinstance(token, str) else None):
        return Response("missing or wrong CSRF token\n", status_code=403, media_type="text/plain")
    await close_session(rt, session)
    response = RedirectResponse("/agent/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request))
    return response


# --- pages -----------------------------------------------------------------------


async def agent_page(request: Request) -> Response:
    """GET /agent: the dashboard (agent or supervisor session)."""
    rt = _rt(request)
    session = await read_session(rt, request.cookies)
    if session is None:
        return RedirectResponse("/agent/login", status_code=303)
    if rt.demo:
        await canned.seed_demo(rt.redis)
    return _page(request, "agent.html", session=session, field=csrf.FIELD, plans=list(rt.config.plans))


async def supervisor_page(request: Request) -> Response:
    """GET /supervisor: the live queue view (supervisor role only)."""
    session = await read_session(_rt(request), request.cookies)
    if session is None:
        return RedirectResponse("/agent/login", status_code=303)
    if not session.is_supervisor:
        return _page(request, "forbidden.html", 403, session=session, field=csrf.FIELD)
    return _page(request, "supervisor.html", session=session, field=csrf.FIELD)


async def reports_page(request: Request) -> Response:
    """GET /supervisor/reports: figures over time, charts drawn by the page (supervisors)."""
    session = await read_session(_rt(request), request.cookies)
    if session is None:
        return RedirectResponse("/agent/login", status_code=303)
    if not session.is_supervisor:
        return _page(request, "forbidden.html", 403, session=session, field=csrf.FIELD)
    rt = _rt(request)
    return _page(request, "reports.html", session=session, field=csrf.FIELD, groups=reports.GROUPS,
                 intervals=reports.INTERVALS, tz=str(rt.config.report_tz.key),
                 today=reports.today_in(rt.config, rt.clock()).isoformat())


# --- JSON APIs ---------------------------------------------------------------------


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers={"Cache-Control": "no-store"})


async def _api_session(request: Request, supervisor: bool = False) -> Session | JSONResponse:
    session = await read_session(_rt(request), request.cookies)
    if session is None:
        return _json({"error": "login required"}, 401)
    if supervisor and not session.is_supervisor:
        return _json({"error": "supervisors only"}, 403)
    return session


async def api_queue(request: Request) -> Response:
    """GET /api/queue: the queue snapshot (chat/snapshot.py) as JSON."""
    session = await _api_session(request, supervisor=True)
    if isinstance(session, JSONResponse):
        return session
    return _json(await queue_snapshot(_rt(request)))


async def api_agents(request: Request) -> Response:
    """GET /api/agents: who is there to take a transfer (any session). With `?all=1`, every
    account that can sign in, offline ones too: a ticket can wait for its assignee, a chat
    cannot."""
    session = await _api_session(request)
    if isinstance(session, JSONResponse):
        return session
    rt = _rt(request)
    agents = await list_agents(rt)
    fields = ("username", "name", "status", "load", "capacity", "langs", "topics")
    if request.query_params.get("all") != "1":
        return _json({"agents": [{k: a[k] for k in fields} for a in agents if a["status"] != frames.AGENT_OFFLINE]})
    live = {a["username"]: a for a in agents}
    everyone = []
    for account in await list_accounts(rt.redis):
        if account.disabled:
            continue
        known = live.get(account.username)
        everyone.append({k: known[k] for k in fields} if known else {
            "username": account.username, "name": account.name, "status": frames.AGENT_OFFLINE, "load": 0,
            "capacity": account.max_chats, "langs": list(account.langs), "topics": list(account.topics)})
    return _json({"agents": everyone})


async def _report(request: Request) -> dict[str, Any] | JSONResponse:
    session = await _api_session(request, supervisor=True)
    if isinstance(session, JSONResponse):
        return session
    rt, params = _rt(request), request.query_params
    try:
        query = reports.parse_query(rt.config, params.get("from"), params.get("to"), params.get("group"),
                                    params.get("interval"), reports.today_in(rt.config, rt.clock()))
    except reports.ReportError as exc:
        return _json({"error": exc.message, "code": exc.code}, 400)
    return await reports.build_report(rt.redis, rt.config, query)


async def api_reports(request: Request) -> Response:
    """GET /api/reports?from=&to=&group=&interval=: figures over time as JSON (supervisors)."""
    report = await _report(request)
    return report if isinstance(report, JSONResponse) else _json(report)


async def api_reports_csv(request: Request) -> Response:
    """GET /api/reports.csv?...: the same rows as CSV, one per interval x group (supervisors)."""
    report = await _report(request)
    if isinstance(report, JSONResponse):
        return report
    name = f"livechat-report-{report['from']}-{report['to']}-{report['group'] or 'all'}-{report['interval']}.csv"
    return Response(reports.to_csv(report), media_type="text/csv; charset=utf-8",
                    headers={"Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="{name}"'})


async def api_canned(request: Request) -> Response:
    """GET /api/canned: the team's canned replies (any session)."""
    session = await _api_session(request)
    if isinstance(session, JSONResponse):
        return session
    return _json({"replies": await canned.list_replies(_rt(request).redis)})


async def api_canned_one(request: Request) -> Response:
    """PUT /api/canned/{shortcut} {"text": ...} or DELETE it: supervisors, with the session's
    CSRF token in the X-CSRF-Token header."""
    session = await _api_session(request, supervisor=True)
    if isinstance(session, JSONResponse):
        return session
    if not csrf.session_token_ok(session.csrf, request.headers.get(csrf.HEADER)):
        return _json({"error": "missing or wrong CSRF token"}, 403)
    redis = _rt(request).redis
    shortcut = request.path_params["shortcut"]
    if request.method == "DELETE":
        found = await canned.delete_reply(redis, shortcut)
        return _json({"deleted": found}, 200 if found else 404)
    try:
        body = json.loads(await request.body() or b"{}")
        text = body.get("text") if isinstance(body, dict) else None
        reply = await canned.save_reply(redis, shortcut, text if isinstance(text, str) else "")
    except (ValueError, UnicodeDecodeError) as exc:
        return _json({"error": str(exc) if not isinstance(exc, json.JSONDecodeError) else "body is not JSON"}, 400)
    return _json(reply)


routes = [
    Route("/agent/login", login_page, methods=["GET"]),
    Route("/agent/login", login, methods=["POST"]),
    Route("/agent/logout", logout, methods=["POST"]),
    Route("/agent", agent_page, methods=["GET"]),
    Route("/supervisor", supervisor_page, methods=["GET"]),
    Route("/supervisor/reports", reports_page, methods=["GET"]),
    Route("/api/reports", api_reports, methods=["GET"]),
    Route("/api/reports.csv", api_reports_csv, methods=["GET"]),
    Route("/api/queue", api_queue, methods=["GET"]),
    Route("/api/agents", api_agents, methods=["GET"]),
    Route("/api/canned", api_canned, methods=["GET"]),
    Route("/api/canned/{shortcut}", api_canned_one, methods=["PUT", "DELETE"]),
    Mount("/agent/static", app=_StaticFiles(directory=STATIC_DIR), name="agent_static"),
]
