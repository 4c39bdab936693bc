"""Two guards uvicorn does not give, on its httptools protocol (`livechat serve` uses it):

- a deadline for the HTTP request head: uvicorn keeps a connection that sent half a header
  (or nothing at all) open for as long as the client likes, so holding sockets costs an
  attacker nothing; past [timing] header_timeout the client gets 408 and the connection ends;
- uvicorn's connection cap (limit_concurrency, [limits] max_connections) applied to WebSocket
  upgrades as well: uvicorn answers 503 to plain requests past it but lets every upgrade in,
  and a hub's connections are nearly all sockets.

It also hands a WebSocket upgrade to the hub's protocol (chat/ws_protocol.py) as parsed, where
uvicorn writes the request head back to bytes for its WebSocket protocol to parse again.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _response(status: str, text: str) -> bytes:
    body = text.encode()
    return (f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


REQUEST_TIMEOUT = _response("408 Request Timeout", "the request head took too long\n")
AT_CAPACITY = _response("503 Service Unavailable", "the server holds as many connections as it may: retry shortly\n")


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a request-head deadline and a connection cap on upgrades."""

    header_timeout: float = 10.0  # set on the subclass made by guarded_http_protocol
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()  # a connection that sends nothing at all is a slow head too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_head_timer()  # the next request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        limit = self.limit_concurrency
        if limit is not None and len(self.connections) >= limit:
            self.logger.warning("Exceeded concurrency limit: WebSocket upgrade refused.")
            self.transport.write(AT_CAPACITY)
            self.transport.close()
            return
        upgrade = getattr(self.ws_protocol_class, "upgrade", None)
        if upgrade is None:  # uvicorn's own protocols read the request again from bytes
            super().handle_websocket_upgrade()
            return
        # chat/ws_protocol.py takes the request as httptools parsed it: no second parse.
        self.connections.discard(self)
        protocol = self.ws_protocol_class(config=self.config, server_state=self.server_state, app_state=self.app_state)
        self.transport.set_protocol(protocol)
        protocol.upgrade(self.transport, self.scope, self.url)
        # The parser holds this protocol's bound methods and the protocol the parser: a cycle
        # that only the garbage collector would free, a dozen objects a socket (a twentieth of
        # a hello's CPU went to collecting them).
        self.parser = None  # type: ignore[assignment]

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        if self.header_timeout > 0:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # no response of ours is under way
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()


def guarded_http_protocol(header_timeout: float) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for uvicorn.Config(http=...), with this request-head deadline
    (seconds; 0 = none)."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"header_timeout": float(header_timeout)})
