"""Checks on the widget's files themselves: size budget, no HTML sinks, SRI helper."""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
import subprocess
import sys
import urllib.request

from widget import WIDGET_DIR

JS = (WIDGET_DIR / "widget.js").read_bytes()
CSS = (WIDGET_DIR / "widget.css").read_bytes()


def test_widget_js_and_css_fit_in_12_kb_gzipped():
    """The served widget (JS + CSS, each gzipped as a server would) stays under 12 kB."""
    size = len(gzip.compress(JS, 9)) + len(gzip.compress(CSS, 9))
    assert size < 12 * 1024, size


def test_widget_source_has_no_html_sinks_eval_cookies_or_foreign_urls():
    """No innerHTML/eval/cookies/localStorage, and no URL but the SVG namespace is written in the code."""
    code = JS.decode()
    for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                   "document.cookie", "localStorage", "setAttribute(\"style\"", ".style.", "fetch(", "XMLHttpRequest"):
        assert banned not in code, banned
    assert re.findall(r"https?://[^\s\"'`]+", code.split("*/", 1)[1]) == ["http://www.w3.org/2000/svg"]


def test_sri_script_prints_sha384_of_both_files():
    """widget/sri.py prints the integrity value of widget.js and widget.css, as the docs say."""
    out = subprocess.run([sys.executable, str(WIDGET_DIR / "sri.py")], capture_output=True, text=True, check=True).stdout
    expected = {name: "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()
                for name, data in (("widget.js", JS), ("widget.css", CSS))}
    assert dict(line.split() for line in out.splitlines()) == expected


def test_widget_is_served_gzipped_to_clients_that_accept_it(hub):
    """With Accept-Encoding: gzip the hub sends the widget compressed; it unpacks to the file."""
    for name in ("widget.js", "widget.css"):
        request = urllib.request.Request(f"{hub.base_url}/{name}", headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert "Accept-Encoding" in response.headers["Vary"]
            assert gzip.decompress(response.read()) == (WIDGET_DIR / name).read_bytes()


def test_widget_is_served_plain_to_clients_that_do_not_accept_gzip(hub):
    """Without Accept-Encoding the bytes are the file itself."""
    with urllib.request.urlopen(f"{hub.base_url}/widget.js", timeout=10) as response:
        assert response.headers.get("Content-Encoding") is None
        assert response.read() == (WIDGET_DIR / "widget.js").read_bytes()
