"""Supervisors see the questions that became chats despite the help centre (GET /api/help/gaps),
grouped by their words, with how often no article was even suggested; and the widget's help
events are checked and counted through POST /api/help/event."""

from __future__ import annotations

import asyncio
import json
import secrets
import string
from tests.support.clients import create_agent, login_cookie
from tests.support.help import post_event
from tests.support.http import arequest



def word() -> str:
    """A made-up word of this test's own (letters only: digits are dropped from questions)."""
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(10))


async def gaps(hub, cookie: str) -> list[dict]:
    reply = await arequest(hub.base_url, "GET", "/api/help/gaps?lang=en", headers={"Cookie": cookie})
    assert reply.status == 200, reply.status
    return json.loads(reply.body)["gaps"]


async def test_questions_that_became_chats_are_grouped_for_supervisors(help_hub, rds, lang):
    """The same words in another order and case count as one question; unsuggested ones are counted apart."""
    w = word()
    assert post_event(help_hub, {"event": "unanswered", "lang": "en", "q": f"How do I share my {w} calendar?",
                                 "shown": ["import-from-another-provider"]}) == 204
    assert post_event(help_hub, {"event": "unanswered", "lang": "en", "q": f"Calendar {w.upper()} share", "shown": []}) == 204
    user = await create_agent(rds, f"s-{lang}", [lang], role="supervisor")
    rows = [g for g in await gaps(help_hub, await asyncio.to_thread(login_cookie, help_hub, user)) if w in g["terms"]]
    assert rows == [{"lang": "en", "terms": " ".join(sorted(["calendar", w, "share"])), "count": 2, "no_suggestion": 1}]


async def test_addresses_and_numbers_are_left_out_of_the_questions_kept(help_hub, rds, lang):
    """An email address, a link and numbers in a question are not stored, only its words."""
    w = word()
    assert post_event(help_hub, {"event": "unanswered", "lang": "en", "shown": [],
                                 "q": f"{w} ada.lovelace@example.org https://x.example/a?t=1 order 12345"}) == 204
    user = await create_agent(rds, f"s-{lang}", [lang], role="supervisor")
    rows = [g["terms"] for g in await gaps(help_hub, await asyncio.to_thread(login_cookie, help_hub, user)) if w in g["terms"]]
    assert rows == [" ".join(sorted([w, "order"]))]


async def test_agents_may_not_read_the_questions(help_hub, rds, lang):
    """An agent's session gets 403; no session gets 401."""
    user = await create_agent(rds, f"a-{lang}", [lang])
    reply = await arequest(help_hub.base_url, "GET", "/api/help/gaps",
                           headers={"Cookie": await asyncio.to_thread(login_cookie, help_hub, user)})
    assert reply.status == 403
    assert (await arequest(help_hub.base_url, "GET", "/api/help/gaps")).status == 401


def test_an_event_about_an_unknown_article_is_refused(help_hub):
    """viewed/solved must name an article that exists (404 not_found); an unknown event is 400."""
    assert post_event(help_hub, {"event": "viewed", "lang": "en", "slug": "no-such-article"}) == 404
    assert post_event(help_hub, {"event": "liked", "lang": "en", "slug": "mailbox-full"}) == 400
