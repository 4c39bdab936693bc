"""The Starlette application: routes, and the life of the process-wide parts (Redis, the
pub/sub bus, the hub, background duties)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from pathlib import Path
from typing import AsyncIterator

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from chat import keys
from chat.bus import Bus
from chat.config import DeskConfig
from chat.duties import Duties
from chat.hub import Hub
from chat.runtime import Runtime
from chat.settings import Settings
from widget import WIDGET_DIR

log = logging.getLogger("livechat")
DEMO_DIR = Path(__file__).resolve().parent / "demo"


def redis_client(url: str) -> Redis:
    """The process's Redis client. One immediate retry on a broken connection: after Redis
    restarts, every pooled connection is stale and would fail its next command (from_url
    gives no retries at all); during a real outage the retry is refused at once, so callers
    still learn quickly that Redis is unavailable. The pool blocks (briefly) when all its
    connections are busy: under a burst a command waits its turn instead of failing."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=64, timeout=5, socket_connect_timeout=2, socket_timeout=5, health_check_interval=10,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    return Redis(connection_pool=pool)


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


def _widget_file(name: str) -> Response:
    if "\0" in name:  # a NUL (sent as %00) would make resolve() raise: a 500 instead of a 404
        return PlainTextResponse("not found", status_code=404)
    path = (WIDGET_DIR / name).resolve()
    if path.parent != WIDGET_DIR or not path.is_file() or path.suffix not in (".js", ".css", ".svg"):
        return PlainTextResponse("not found", status_code=404)
    return FileResponse(path, headers=STATIC_HEADERS)


async def widget_js(request: Request) -> Response:
    return _widget_file("widget.js")


async def widget_css(request: Request) -> Response:
    return _widget_file("widget.css")


async def widget_asset(request: Request) -> Response:
    return _widget_file(request.path_params["name"])


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


def create_app(settings: Settings, config: DeskConfig, redis_url: str, demo: bool = False) -> Starlette:
    from chat import agent_socket, visitor_socket

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = redis_client(redis_url)
        rt = Runtime(settings=settings, config=config, redis=redis, demo=demo)
        app.state.rt = rt
        rt.secret = await shared_secret(rt)
        rt.bus = Bus(redis)
        await rt.bus.start()
        rt.hub = Hub(rt)
        await rt.hub.start()
        duties = Duties(rt, rt.hub.queue)
        duties.start()
        try:
            yield
        finally:
            for conn in rt.hub.all_connections():
                conn.cut_off(1012, "server restarting: reconnect")
            await duties.stop()
            try:  # bounded: SIGTERM must end the process within seconds (uvicorn waits for this)
                await asyncio.wait_for(rt.hub.stop(), 3.0)
            except asyncio.TimeoutError:
                log.warning("hub loops did not stop in time; exiting anyway")
            await rt.bus.stop()
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
    for module in ("agents.views", "transcripts.views", "chat.supervisor_socket", "chat.metrics"):
        routes += optional_routes(module)
    return Starlette(routes=routes, lifespan=lifespan)
