"""The Starlette application: routes, and the life of the process-wide parts (Redis, the
pub/sub bus, the hub, background duties)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import secrets
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from chat import frames, keys
from chat.bus import make_bus
from chat.config import DeskConfig
from chat.duties import Duties
from chat.hub import Hub
from chat.runtime import Runtime
from chat.settings import Settings
from chat.store import redis_client
from widget import WIDGET_DIR

log = logging.getLogger("livechat")
DEMO_DIR = Path(__file__).resolve().parent / "demo"


async def shared_secret(rt: Runtime) -> bytes:
    """One random key for every hub on this Redis (cookie signatures, address hashes)."""
    if rt.settings.session_secret:
        return rt.settings.session_secret.encode()
    await rt.redis.set(keys.SERVER_SECRET, secrets.token_hex(32), nx=True)
    return (await rt.redis.get(keys.SERVER_SECRET)) or b""


async def healthz(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    try:
        await asyncio.wait_for(rt.redis.ping(), 1.0)
    except (RedisError, OSError, asyncio.TimeoutError) as exc:
        return JSONResponse({"status": "unavailable", "reason": f"redis: {type(exc).__name__}"}, status_code=503)
    return JSONResponse({"status": "ok"})


STATIC_HEADERS = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff",
                  "Cross-Origin-Resource-Policy": "cross-origin", "Access-Control-Allow-Origin": "*"}


_GZIPPED: dict[Path, tuple[int, bytes]] = {}  # widget file -> (mtime_ns, gzip -9 bytes)
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


async def _widget_file(request: Request, name: str) -> Response:
    """A widget file; compressed once (gzip -9, kept in memory) for clients that take gzip:
    the widget is on every page of the company's site."""
    if "\0" in name:  # a NUL (sent as %00) would make resolve() raise: a 500 instead of a 404
        return PlainTextResponse("not found", status_code=404)
    path = (WIDGET_DIR / name).resolve()
    if path.parent != WIDGET_DIR or not path.is_file() or path.suffix not in MEDIA_TYPES:
        return PlainTextResponse("not found", status_code=404)
    headers = {**STATIC_HEADERS, "Vary": "Accept-Encoding"}
    if "gzip" not in request.headers.get("accept-encoding", ""):
        return FileResponse(path, headers=headers, media_type=MEDIA_TYPES[path.suffix])
    mtime = path.stat().st_mtime_ns
    cached = _GZIPPED.get(path)
    if cached is None or cached[0] != mtime:
        body = await asyncio.to_thread(lambda: gzip.compress(path.read_bytes(), 9, mtime=0))
        cached = _GZIPPED[path] = (mtime, body)
    return Response(cached[1], media_type=MEDIA_TYPES[path.suffix], headers={**headers, "Content-Encoding": "gzip"})


async def widget_js(request: Request) -> Response:
    return await _widget_file(request, "widget.js")


async def widget_css(request: Request) -> Response:
    return await _widget_file(request, "widget.css")


async def widget_asset(request: Request) -> Response:
    return await _widget_file(request, request.path_params["name"])


async def demo_page(request: Request) -> Response:
    if not request.app.state.rt.demo:
        return PlainTextResponse("not found", status_code=404)
    name = request.path_params.get("name", "index.html")
    if "\0" in name:
        return PlainTextResponse("not found", status_code=404)
    path = (DEMO_DIR / name).resolve()
    if path.parent != DEMO_DIR or not path.is_file():
        return PlainTextResponse("not found", status_code=404)
    return FileResponse(path)


async def home(request: Request) -> Response:
    if request.app.state.rt.demo:
        return await demo_page(request)
    return PlainTextResponse("livechat hub. Agents: /agent  Supervisors: /supervisor  Widget: /widget.js\n")


def optional_routes(module: str) -> list[BaseRoute]:
    """Routes of the parts that plug into the hub (dashboard, tickets, metrics)."""
    import importlib

    try:
        return list(importlib.import_module(module).routes)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return []


class HubApp(Starlette):
    """The Starlette application, with each socket's endpoint called straight from here.

    Through Starlette's stack, every socket's handler would run under its error middleware,
    its exception middleware, the router and the route's session wrapper: coroutines and
    closures kept for the socket's whole life (about 4.5 KiB per idle socket, issue 17), two of
    which also wrap every frame sent. For a socket none of them does anything here: the error
    middleware passes sockets through, and no exception handler of the app is for sockets.
    Middleware added to the app would not see the sockets: add it here too."""

    def __init__(self, *, routes: list[BaseRoute], **kwargs) -> None:
        super().__init__(routes=routes, **kwargs)
        self.sockets: dict[str, Callable[[WebSocket], Awaitable[None]]] = {
            r.path: r.endpoint for r in routes if isinstance(r, WebSocketRoute) and not r.param_convertors
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.sockets.get(scope["path"]) if scope["type"] == "websocket" and not scope.get("root_path") else None
        if endpoint is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        await endpoint(WebSocket(scope, receive, send))


def create_app(settings: Settings, config: DeskConfig, redis_url: str, demo: bool = False) -> HubApp:
    import helpcentre.library
    from chat import agent_socket, visitor_socket

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = redis_client(redis_url)
        rt = Runtime(settings=settings, config=config, redis=redis, demo=demo)
        app.state.rt = rt
        rt.secret = await shared_secret(rt)
        bus = app.state.bus = make_bus(redis)
        await bus.start()
        hub = app.state.hub = Hub(rt, bus)
        rt.on_work = hub.dispatch.kick
        await hub.start()
        duties = Duties(rt)
        duties.start()
        help_centre = app.state.help_centre = await helpcentre.library.start(rt)  # loaded, folder watched
        try:
            yield
        finally:
            for conn in hub.registry.all_connections():
                conn.cut_off(frames.CLOSE_RESTART, "server restarting: reconnect")
            await duties.stop()
            await help_centre.stop()
            try:  # bounded: SIGTERM must end the process within seconds (uvicorn waits for this)
                await asyncio.wait_for(hub.stop(), 3.0)
            except asyncio.TimeoutError:
                log.warning("hub loops did not stop in time; exiting anyway")
            await bus.stop()
            await redis.aclose()

    routes: list[BaseRoute] = [
        Route("/", home),
        Route("/healthz", healthz),
        Route("/widget.js", widget_js),
        Route("/widget.css", widget_css),
        Route("/widget/{name}", widget_asset),
        Route("/demo/{name}", demo_page),
        *visitor_socket.routes,
        *agent_socket.routes,
    ]
    for module in ("agents.views", "transcripts.views", "transcripts.customer", "transcripts.widget_tickets",
                   "chat.supervisor_socket", "chat.metrics", "helpcentre.views"):
        routes += optional_routes(module)
    return HubApp(routes=routes, lifespan=lifespan)
