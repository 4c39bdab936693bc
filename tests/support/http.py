"""Plain HTTP for the tests, two ways: ``request`` sends exactly what the caller gives and
follows no redirect (a script written from docs/protocol.md); ``fetch`` follows redirects
like a simple client library. HTTP errors are answers too, never exceptions."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPConnection
from typing import Any
from urllib.parse import urlencode, urlsplit

TIMEOUT = 15.0  # seconds for one request (a loaded machine hashes passwords slowly)


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def cookies(self) -> dict[str, str]:
        """Set-Cookie headers by cookie name (the whole header line as value)."""
        found = {}
        for key, value in self.headers:
            if key.lower() == "set-cookie":
                found[value.split("=", 1)[0].strip()] = value
        return found

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def request(base_url: str, method: str, path: str, body: bytes | str | None = None,
            headers: dict[str, str] | None = None) -> Reply:
    """One HTTP request, no redirect followed, no cookie jar: exactly what the caller sends."""
    parts = urlsplit(base_url)
    conn = HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body, headers or {})
        response = conn.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    finally:
        conn.close()


async def arequest(base_url: str, method: str, path: str, body: bytes | str | None = None,
                   headers: dict[str, str] | None = None) -> Reply:
    return await asyncio.to_thread(request, base_url, method, path, body, headers)


def form(**fields: str) -> tuple[str, dict[str, str]]:
    return urlencode(fields), {"Content-Type": "application/x-www-form-urlencoded"}


async def post_login(base_url: str, username: str, password: str, **headers: str) -> Reply:
    """A bare login POST (as a script written from docs/protocol.md sends it), plus any headers;
    the reply as it came (tests of the login itself). To be signed in, use clients.login_cookie."""
    body, base = form(username=username, password=password)
    return await arequest(base_url, "POST", "/agent/login", body, {**base, **headers})


def fetch(url: str, *, method: str = "GET", data: bytes | None = None, headers: dict[str, str] | None = None,
          timeout: float = 5.0) -> Reply:
    """One request with urllib, redirects followed."""
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return Reply(response.status, list(response.headers.items()), response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, list(exc.headers.items()), exc.read())


def http(url: str, *, method: str = "GET", data: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of ``fetch``."""
    reply = fetch(url, method=method, data=data, headers=headers, timeout=timeout)
    return reply.status, reply.body


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET a URL: the status, the headers (lowercase names) and the body."""
    reply = fetch(url, headers=headers, timeout=10)
    return reply.status, {k.lower(): v for k, v in reply.headers}, reply.body


def health_status(base_url: str) -> int | None:
    """/healthz's status, or None while nothing answers."""
    try:
        return http(base_url + "/healthz", timeout=3)[0]
    except (urllib.error.URLError, OSError):
        return None
