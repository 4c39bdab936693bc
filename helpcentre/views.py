"""The help centre's HTTP side.

Public, for visitors (no cookie read or set; CORS open to any origin, since the widget runs on
the company's site and no credential is involved):

- `GET /api/help/search?q=&lang=&topic=` -> `{"results": [{slug, lang, title, url, topic, snippet}]}`
- `GET /api/help/article/{lang}/{slug}` -> the article as a tree the widget builds as DOM
- `POST /api/help/event` `{"event": "viewed"|"solved"|"unanswered", "lang", "slug"?, "q"?, "shown"?}`
- `GET /help` (index by topic, search box) and `GET /help/{lang}/{slug}` (an article):
  server-rendered pages, strict CSP, cacheable, no script at all.

For supervisors: `GET /api/help/gaps?lang=` -> the questions that still became chats.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from chat import frames, keys, windows
from chat.runtime import Runtime
from chat.stats import record_count
from helpcentre.library import Library
from helpcentre.search import Index, analyzer

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
RATE_WINDOW = 60
MAX_RESULTS = 10
GAPS_KEPT = 500  # distinct question groups kept per language (the least frequent are dropped)
GAP_WORDS = 8

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "public, max-age=300",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
API_HEADERS = {"Access-Control-Allow-Origin": "*", "X-Content-Type-Options": "nosniff"}

TEXTS = {
    "en": {"title": "Help centre", "search": "Search the help centre", "go": "Search", "none": "No article matches your search yet.",
           "results": "Results for “{q}”", "empty": "No articles yet.", "back": "All articles",
           "more": "Still need help? Use the chat button on our site: a person will answer.",
           "topics": {"account": "Account & login", "technical": "Technical", "security": "Security",
                      "billing": "Billing", "other": "Other"}},
    "fr": {"title": "Centre d'aide", "search": "Rechercher dans l'aide", "go": "Rechercher",
           "none": "Aucun article ne correspond à votre recherche.", "results": "Résultats pour « {q} »",
           "empty": "Aucun article pour le moment.", "back": "Tous les articles",
           "more": "Besoin d'aide ? Utilisez le bouton de chat de notre site : une personne vous répondra.",
           "topics": {"account": "Compte et connexion", "technical": "Technique", "security": "Sécurité",
                      "billing": "Facturation", "other": "Autre"}},
}

_env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, auto_reload=False)


def _rt(request: Request) -> Runtime:
    return request.app.state.rt


def _index(request: Request) -> Index:
    library: Library | None = getattr(request.app.state, "help_centre", None)
    return library.index if library else Index([])


def _api(data: Any, status: int = 200, cache: str = "no-store") -> JSONResponse:
    return JSONResponse(data, status_code=status, headers={**API_HEADERS, "Cache-Control": cache})


def _error(code: str, message: str, status: int) -> JSONResponse:
    return _api({"error": code, "message": message}, status)



async def _allowed(request: Request) -> bool:
    """Count one request against [limits] help_requests_per_minute for the client address
    (shared by every hub through Redis). Loopback is not limited (local tools, or a proxy
    that passes no address, when every visitor would share one allowance)."""
    rt = _rt(request)
    host = request.client.host if request.client else ""
    return await windows.address_within(rt.redis, rt.secret, host, "help", keys.help_rate,
                                        rt.config.limits.help_requests_per_minute, RATE_WINDOW)


def _param(request: Request, name: str, pattern: str = r"^[a-z0-9_-]{1,40}$") -> str | None:
    value = request.query_params.get(name) or None
    return value.lower() if value and re.match(pattern, value.lower()) else None


async def api_search(request: Request) -> Response:
    """GET /api/help/search: the best articles for a question, in a language and topic."""
    if not await _allowed(request):
        return _error(frames.RATE_LIMITED, "too many help requests from your address: try again in a minute", 429)
    q = frames.clean_text(request.query_params.get("q", ""))
    limit_chars = _rt(request).config.limits.help_query_chars
    if len(q) > limit_chars:
        return _error(frames.TOO_LONG, f"q is longer than {limit_chars} characters", 400)
    try:
        limit = max(1, min(MAX_RESULTS, int(request.query_params.get("limit", 5))))
    except ValueError:
        return _error(frames.BAD_FRAME, "limit must be a whole number", 400)
    index = _index(request)
    hits = await asyncio.to_thread(index.search, q, _param(request, "lang"), _param(request, "topic"), limit)
    return _api({"results": [h.as_json() for h in hits]}, cache="public, max-age=60")


async def api_article(request: Request) -> Response:
    """GET /api/help/article/{lang}/{slug}: title and body tree for the widget's panel."""
    if not await _allowed(request):
        return _error(frames.RATE_LIMITED, "too many help requests from your address: try again in a minute", 429)
    article = _index(request).by_key.get((request.path_params["lang"], request.path_params["slug"]))
    if article is None:
        return _error(frames.NOT_FOUND, "no such article", 404)
    return _api({"lang": article.lang, "slug": article.slug, "title": article.title, "topic": article.topic,
                 "url": article.url, "tree": article.tree}, cache="public, max-age=300")


def gap_terms(lang: str, question: str) -> str:
    """A question reduced to what groups it with similar ones: its significant words, sorted,
    without addresses, links or numbers (which identify people rather than problems)."""
    question = re.sub(r"\S+@\S+|https?://\S+", " ", question)
    words = [w for w in analyzer(lang).words(question) if 2 < len(w) <= 30 and not any(c.isdigit() for c in w)]
    return " ".join(sorted(set(words[:GAP_WORDS * 2]))[:GAP_WORDS])


async def api_event(request: Request) -> Response:
    """POST /api/help/event: the widget reports an article viewed, a question solved by an
    article (a deflection), or a question that became a chat despite the suggestions. Sent as
    text/plain so that no CORS preflight is needed; the answer carries no data."""
    rt = _rt(request)
    if not await _allowed(request):
        return _error(frames.RATE_LIMITED, "too many help requests from your address: try again in a minute", 429)
    body = await request.body()
    if len(body) > 8192:
        return _error(frames.TOO_LONG, "event is larger than 8192 bytes", 413)
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _error(frames.BAD_FRAME, "body is not JSON", 400)
    if not isinstance(event, dict) or event.get("event") not in ("viewed", "solved", "unanswered"):
        return _error(frames.BAD_FRAME, "event must be viewed, solved or unanswered", 400)
    lang, kind, now = str(event.get("lang") or ""), event["event"], rt.clock()
    index = _index(request)
    if kind in ("viewed", "solved"):
        if (lang, event.get("slug")) not in index.by_key:
            return _error(frames.NOT_FOUND, "no such article", 404)
        await record_count(rt.redis, f"help_{kind}", now)
        return Response(status_code=204, headers=API_HEADERS)
    question = event.get("q")
    if not isinstance(question, str) or not re.match(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$", lang):
        return _error(frames.BAD_FRAME, "unanswered needs a lang and a question q", 400)
    terms = gap_terms(lang, frames.clean_text(question)[: rt.config.limits.help_query_chars])
    if terms:
        shown = event.get("shown")
        ttl = max(86400, int(rt.config.retention_days * 86400))
        async with rt.redis.pipeline(transaction=False) as pipe:
            targets = [keys.help_gaps(lang)] + ([] if shown else [keys.help_gaps_unmatched(lang)])
            for key in targets:
                pipe.zincrby(key, 1, terms)
                pipe.zremrangebyrank(key, 0, -GAPS_KEPT - 1)
                pipe.expire(key, ttl)
            await pipe.execute()
        await record_count(rt.redis, "help_unanswered", now)
    return Response(status_code=204, headers=API_HEADERS)


async def api_gaps(request: Request) -> Response:
    """GET /api/help/gaps?lang=: for supervisors, the questions that became chats despite the
    help centre, most frequent first, and how often no article was even suggested."""
    from agents.sessions import read_session

    rt = _rt(request)
    session = await read_session(rt, request.cookies)
    if session is None:
        return JSONResponse({"error": "login required"}, 401, headers={"Cache-Control": "no-store"})
    if not session.is_supervisor:
        return JSONResponse({"error": "supervisors only"}, 403, headers={"Cache-Control": "no-store"})
    langs = [_param(request, "lang")] if _param(request, "lang") else _index(request).langs
    out = []
    for lang in langs:
        rows = await rt.redis.zrevrange(keys.help_gaps(lang), 0, 49, withscores=True)
        unmatched = await rt.redis.zmscore(keys.help_gaps_unmatched(lang), [m for m, _ in rows]) if rows else []
        for (member, count), none in zip(rows, unmatched):
            out.append({"lang": lang, "terms": member.decode(), "count": int(count), "no_suggestion": int(none or 0)})
    out.sort(key=lambda g: -g["count"])
    return JSONResponse({"gaps": out}, headers={"Cache-Control": "no-store"})


# --- pages ---------------------------------------------------------------------------


def _page_lang(request: Request, index: Index) -> str:
    """?lang= if there are articles in it, else the visitor's browser languages, else English."""
    available = index.langs or ["en"]
    asked = _param(request, "lang")
    if asked in available:
        return asked
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower().split("-")[0]
        if code in available:
            return code
    return "en" if "en" in available else available[0]


def _html(request: Request, template: str, **context: Any) -> Response:
    body = _env.get_template(template).render(**context).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    headers = {**PAGE_HEADERS, "ETag": etag, "Vary": "Accept-Language"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return HTMLResponse(body, headers=headers)


async def help_index(request: Request) -> Response:
    """GET /help: articles by topic, or the results of ?q= (works without any script)."""
    index = _index(request)
    lang = _page_lang(request, index)
    texts = TEXTS.get(lang, TEXTS["en"])
    q = frames.clean_text(request.query_params.get("q", ""))[: _rt(request).config.limits.help_query_chars].strip()
    if q and not await _allowed(request):
        return PlainTextResponse("too many searches from your address: try again in a minute", 429)
    results = await asyncio.to_thread(index.search, q, lang, None, MAX_RESULTS) if q else []
    topics: dict[str, list] = {}
    for a in sorted((a for a in index.articles if a.lang == lang), key=lambda a: a.title.lower()):
        topics.setdefault(a.topic, []).append(a)
    order = list(texts["topics"])
    grouped = sorted(topics.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0]))
    return _html(request, "index.html", lang=lang, t=texts, q=q, results=results, topics=grouped,
                 langs=index.langs)


async def help_article(request: Request) -> Response:
    """GET /help/{lang}/{slug}: one article, rendered inert (no raw HTML, no script)."""
    index = _index(request)
    article = index.by_key.get((request.path_params["lang"], request.path_params["slug"]))
    if article is None:
        return PlainTextResponse("no such article", 404, headers={"Content-Security-Policy": CSP})
    texts = TEXTS.get(article.lang, TEXTS["en"])
    return _html(request, "article.html", lang=article.lang, t=texts, article=article, body=Markup(article.html))


async def help_static(request: Request) -> Response:
    name = request.path_params["name"]
    path = (STATIC_DIR / name).resolve()
    if "\0" in name or path.parent != STATIC_DIR or not path.is_file():
        return PlainTextResponse("not found", 404)
    return FileResponse(path, headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"})


routes = [
    Route("/api/help/search", api_search, methods=["GET"]),
    Route("/api/help/article/{lang}/{slug}", api_article, methods=["GET"]),
    Route("/api/help/event", api_event, methods=["POST"]),
    Route("/api/help/gaps", api_gaps, methods=["GET"]),
    Route("/help", help_index, methods=["GET"]),
    Route("/help/static/{name}", help_static, methods=["GET"]),
    Route("/help/{lang}/{slug}", help_article, methods=["GET"]),
]
