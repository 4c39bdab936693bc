"""The help centre's tests: a hostile article for the help folder (the ``help_dir`` and
``help_hub`` fixtures serve it with the demo's articles), and its search and event calls."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from tests.support.http import fetch, get
from tests.support.servers import HubProcess

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


def search(hub: HubProcess, q: str, **params: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"q": q, **params})
    status, _, body = get(f"{hub.base_url}/api/help/search?{query}")
    assert status == 200, body
    return json.loads(body)["results"]


def post_event(hub: HubProcess, event: dict[str, Any]) -> int:
    return fetch(f"{hub.base_url}/api/help/event", method="POST", data=json.dumps(event).encode(), timeout=10).status
