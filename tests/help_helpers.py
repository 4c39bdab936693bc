"""Shared pieces of the help centre's tests: a help folder (the demo's articles and one
hostile article) and a hub process that serves it and looks for changes every 0.2 s."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from helpcentre.library import DEMO_ARTICLES
from tests.servers import TEST_CONFIG, HubProcess, hub_env

HOSTILE = """---
title: Hostile article
lang: en
topic: other
slug: hostile-article
keywords: hostile
---
Before the script.

<script>window.__pwned = 1; alert("pwned")</script>

<img src="x" onerror="window.__pwned = 2">

[a javascript link](javascript:window.__pwned=3) and ![a picture elsewhere](https://other.invalid/pixel.png)

After the script.
"""


@pytest.fixture(scope="module")
def help_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("help") / "help"
    shutil.copytree(DEMO_ARTICLES, folder)
    (folder / "hostile.md").write_text(HOSTILE)
    return folder


@pytest.fixture(scope="module")
def help_hub(redis_url, tmp_path_factory, help_dir):
    """A `livechat serve` with the help folder above, sharing the session's Redis."""
    data = tmp_path_factory.mktemp("help-hub")
    config = data / "livechat.toml"
    config.write_text(TEST_CONFIG.replace("[timing]\n", "[timing]\nhelp_reload = 0.2\n"))
    process = HubProcess(hub_env(redis_url, data, config, LIVECHAT_HELP_DIR=str(help_dir)), data)
    process.start()
    yield process
    process.terminate()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET a URL; the status, headers (lowercase names) and body, for errors too."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def search(hub: HubProcess, q: str, **params: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"q": q, **params})
    status, _, body = get(f"{hub.base_url}/api/help/search?{query}")
    assert status == 200, body
    return json.loads(body)["results"]


def post_event(hub: HubProcess, event: dict[str, Any]) -> int:
    request = urllib.request.Request(f"{hub.base_url}/api/help/event", data=json.dumps(event).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
