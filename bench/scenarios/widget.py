"""6. Widget size: what a visitor's browser downloads to get the chat button, as served by
the hub (GET /widget.js and /widget.css): raw bytes, gzip -9 bytes, and the bytes on the
wire when asked with Accept-Encoding: gzip (equal to raw if the hub does not compress)."""

from __future__ import annotations

import gzip
from typing import Any

from bench.scenarios.common import Context
from bench.servers import OurHub, http_get

FILES = ("/widget.js", "/widget.css")


def run(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with OurHub(ctx.scratch / "widget") as hub:
        for path in FILES:
            status, headers, body = http_get(hub.port, path, {"Accept-Encoding": "gzip"})
            encoding = headers.get("content-encoding", "")
            raw = gzip.decompress(body) if encoding == "gzip" else body
            out[path] = {
                "status": status,
                "raw_bytes": len(raw),
                "gzip9_bytes": len(gzip.compress(raw, 9, mtime=0)) if status == 200 else None,
                "wire_bytes": len(body),
                "content_encoding": encoding or "identity",
            }
    out["total_gzip9_bytes"] = sum(v["gzip9_bytes"] or 0 for v in out.values() if isinstance(v, dict))
    return out
