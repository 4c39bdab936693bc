"""Hostile text: unicode edge cases and HTML/script in every text field. Text is stored and
delivered as the visitor typed it (minus what cannot be stored: lone surrogates and control
characters) and is never interpreted: clients render it with textContent, HTML pages and
mails escape it."""

from __future__ import annotations

import asyncio
import email
import json
import re
from email import policy
from pathlib import Path

import msgpack
import pytest

from chat import keys
from tests.support.clients import agent, Client, create_agent, login_cookie, visitor
from tests.support.http import http
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parent.parent

UNICODE = {
    "rtl override": "pay \u202etxt.exe\u202c now",
    "bidi isolates": "\u2067\u0627\u0644\u0633\u0644\u0627\u0645\u2069 and \u2066abc\u2069",
    "zero width": "a\u200bb\u200cc\u200dd\u2060e\ufeff",
    "combining pile": "Z" + "\u0336\u0301\u0308" * 33,
    "emoji zwj": "\U0001F469\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466 \U0001F3F3\uFE0F\u200D\U0001F308",
    "astral": "\U00010348\U0001D11E\U0002F800",
    "line separators": "one\u2028two\u2029three",
    "mixed scripts": "\u4f60\u597d \u05e9\u05dc\u05d5\u05dd \u0928\u092e\u0938\u094d\u0924\u0947",
    "look-alikes": "\u0440\u0430\u0443\u0440\u0430l.com",  # Cyrillic letters that look Latin
}

HTML = "<img src=x onerror=alert(1)><script>alert('x')</script>\"'&amp;</textarea>{{7*7}}${7*7}"


# A visitor's name is one printable line (it reaches mail headers): line breaks become a
# space, bidi controls and other invisible format characters go; joiners stay.
AS_NAME = {
    "rtl override": "pay txt.exe now",
    "bidi isolates": "\u0627\u0644\u0633\u0644\u0627\u0645 and abc",
    "zero width": "ab\u200cc\u200dde",
    "line separators": "one two three",
}


@pytest.mark.parametrize("name", list(UNICODE))
async def test_unicode_edge_cases_are_stored_and_delivered_as_sent(hub, rds, lang, name):
    """RTL overrides, zero-width and combining characters, emoji, astral planes: messages
    exactly as sent, names as one printable line."""
    text = UNICODE[name]
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, welcome = await visitor(hub, lang, name=text)
    assigned = await sam.expect("assigned")
    assert assigned["visitor"]["name"] == AS_NAME.get(name, text)
    await ada.send(type="message", text=text, client_id="u")
    assert (await ada.expect("message", client_id="u"))["text"] == text
    assert (await sam.expect("message", chat_id=welcome["chat_id"], client_id="u"))["text"] == text
    [stored] = await rds.lrange(keys.chat_log(welcome["chat_id"]), 0, -1)
    assert msgpack.unpackb(stored)["text"] == text


async def test_lone_surrogates_and_control_characters_are_cleaned_not_fatal(hub, rds, lang):
    """Lone surrogates (valid JSON escapes, invalid text) and C0 controls are replaced or
    dropped, in messages and in hello fields; the chat goes on."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ws_hello = '{"type":"hello","lang":"%s","name":"Ada\\ud800 \\udfff\\u0000\\u001b[31m"}' % lang

    import websockets

    ada = Client(await websockets.connect(hub.ws_url + "/ws/visitor"))
    await ada.ws.send(ws_hello)
    welcome = await ada.expect("welcome")
    assigned = await sam.expect("assigned")
    assert assigned["visitor"]["name"] == "Ada? ?[31m"
    await ada.ws.send('{"type":"message","client_id":"s","text":"a\\ud83db\\u0007c\\td\\ne"}')
    ack = await ada.expect("message", client_id="s")
    assert ack["text"] == "a?bc\td\ne"
    assert (await sam.expect("message", chat_id=welcome["chat_id"], client_id="s"))["text"] == "a?bc\td\ne"
    await ada.ws.send('{"type":"message","client_id":"\\udc00","text":"ok"}')
    assert (await ada.expect("message", client_id="?"))["text"] == "ok"


async def test_html_and_script_are_stored_as_text_and_escaped_wherever_shown(hub, rds, lang):
    """HTML in every text field is kept verbatim as text; the ticket page and the ticket mails
    escape it; nothing renders it."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang], name=HTML[:40])
    email_addr = "<b>x</b>@example.org"
    ada, welcome = await visitor(hub, lang, name=HTML, email=email_addr, page="https://e.org/?q=" + HTML,
                                 site=HTML[:100])
    chat_id = welcome["chat_id"]
    assigned = await sam.expect("assigned")
    assert assigned["visitor"]["name"] == HTML and assigned["visitor"]["page"].endswith(HTML)
    await ada.send(type="message", text=HTML, client_id=HTML[:64])
    await ada.expect("message")
    await sam.send(type="message", chat_id=chat_id, text=HTML, client_id="a")
    assert (await ada.expect("message", client_id="a"))["text"] == HTML
    log = [msgpack.unpackb(raw) for raw in await rds.lrange(keys.chat_log(chat_id), 0, -1)]
    assert [m["text"] for m in log] == [HTML, HTML]
    await sam.send(type="close", chat_id=chat_id, resolution="unresolved")
    ref = (await ada.expect("ticket"))["ref"]

    supervisor = f"s-{lang}"
    await create_agent(rds, supervisor, [lang], role="supervisor")
    cookie = await asyncio.to_thread(login_cookie, hub, supervisor)
    status, page = http(f"{hub.base_url}/api/tickets/{ref}", headers={"Cookie": cookie, "Accept": "text/html"})
    assert status == 200
    assert_escaped(page.decode())
    status, body = http(f"{hub.base_url}/api/tickets/{ref}", headers={"Cookie": cookie, "Accept": "application/json"})
    assert HTML in strings(json.loads(body))  # JSON carries the text as text

    mail_dir = hub.data_dir / "mail"
    mails = await eventually(lambda: [p for p in mail_dir.rglob("*") if p.is_file() and ref.encode() in p.read_bytes()],
                             20, message=f"the mails of ticket {ref}")
    for path in mails:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        for part in message.walk():
            if part.get_content_type() == "text/html":
                assert_escaped(part.get_content())


def strings(value) -> list[str]:
    """Every string anywhere in a JSON document."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def assert_escaped(html: str) -> None:
    assert "<script>alert" not in html and "<img src=x" not in html and "</textarea>{{" not in html
    assert "&lt;script&gt;" in html or "&lt;img" in html


CLIENT_CODE = [ROOT / "widget" / "widget.js", *sorted((ROOT / "agents" / "static").rglob("*.js"))]
SINKS = re.compile(r"\.innerHTML\s*[+]?=|\.outerHTML\s*=|insertAdjacentHTML|document\.write|\beval\s*\(|new\s+Function\s*\(")


@pytest.mark.parametrize("path", CLIENT_CODE, ids=[str(p.relative_to(ROOT)) for p in CLIENT_CODE])
def test_client_code_never_turns_text_into_html(path):
    """The widget and the dashboards' scripts and modules never use an HTML sink (innerHTML,
    document.write, eval...): whichever of them builds elements puts text in with textContent."""
    source = path.read_text()
    assert not SINKS.findall(source), f"{path.name} uses an HTML sink"
    if "createElement" in source:
        assert "textContent" in source
