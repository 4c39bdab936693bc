"""Tickets in the agent's hands and the customer's, over sockets and HTTP: live ticket news
on the agent socket, who has a ticket open, the private ticket page, and the widget's
ticket calls."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlencode, urlsplit

import pytest
import websockets

from chat.identity import sign
from tests.support.clients import Client, fresh_address
from tests.support.desk import Desk, LINK
from tests.support.http import Reply, request
from tests.support.redis import DATABASES
from tests.support.servers import TEST_CONFIG, TEST_SITE_SECRET

INBOX = TEST_CONFIG + """
[limits]
ticket_requests_per_minute = 5
"""
@pytest.fixture(scope="module")
def desk(redis_url, tmp_path_factory):
    desk = Desk(redis_url, tmp_path_factory.mktemp("inbox"), INBOX, DATABASES["ticket_inbox"], public=True)
    yield desk
    desk.stop()


async def agent_socket(desk: Desk, user: str) -> Client:
    """A dashboard's socket for this agent, past its welcome."""
    cookie, _ = await asyncio.to_thread(desk.session, user)
    ws = await websockets.connect(desk.hub.ws_url + "/ws/agent", additional_headers={"Cookie": cookie},
                                  ping_interval=None)
    client = Client(ws)
    await client.expect("welcome")
    return client


# --- live ticket news on the agent socket -------------------------------------------------


async def test_a_mailed_in_ticket_reaches_every_agent_socket_live(desk, lang):
    """A new ticket from mail is announced as ticket_changed to the agents' sockets."""
    sam, kim = await agent_socket(desk, "sam"), await agent_socket(desk, "kim")
    ref = await asyncio.to_thread(desk.new_ticket, f"lia-{lang}@example.org")
    await sam.expect("ticket_changed", ref=ref)
    await kim.expect("ticket_changed", ref=ref)
    await sam.close()
    await kim.close()


async def test_an_answer_is_announced_as_a_ticket_change(desk, lang):
    """An agent's note on a ticket reaches the other agents as ticket_changed."""
    ref = await asyncio.to_thread(desk.new_ticket, f"max-{lang}@example.org")
    kim = await agent_socket(desk, "kim")
    status, _ = await asyncio.to_thread(desk.call, "POST", f"/api/tickets/{ref}/messages",
                                        {"text": "Looking at it.", "internal": True}, "sam")
    assert status == 201
    await kim.expect("ticket_changed", ref=ref)
    await kim.close()


async def test_two_agents_on_one_ticket_see_each_other(desk, lang):
    """ticket_viewing from one agent reaches the other as ticket_viewers, replying included."""
    ref = await asyncio.to_thread(desk.new_ticket, f"ned-{lang}@example.org")
    sam, kim = await agent_socket(desk, "sam"), await agent_socket(desk, "kim")
    await kim.send(type="ticket_viewing", ref=ref, replying=False)
    await sam.send(type="ticket_viewing", ref=ref, replying=True)
    frame = await kim.expect("ticket_viewers", ref=ref, viewers=[
        {"username": "kim", "name": "Kim", "replying": False}, {"username": "sam", "name": "Sam", "replying": True}])
    assert frame["ref"] == ref
    await sam.close()
    await kim.expect("ticket_viewers", ref=ref, viewers=[{"username": "kim", "name": "Kim", "replying": False}])
    await kim.close()


async def test_viewing_an_unknown_ticket_is_refused(desk):
    """ticket_viewing of a reference that is no ticket gets not_found and is not announced."""
    sam = await agent_socket(desk, "sam")
    await sam.send(type="ticket_viewing", ref="LC-ZZZZZZ")
    error = await sam.expect("error")
    assert error["code"] == "not_found" and error["refused"] == "ticket_viewing"
    await sam.close()


# --- the private ticket page ------------------------------------------------------------


def body_of(mail) -> str:
    return mail.get_body(("plain",)).get_content()


def page_path(mail) -> str:
    """The private page a mail links to (path only)."""
    found = LINK.search(body_of(mail))
    assert found, body_of(mail)
    return urlsplit(found.group(0)).path


def get(desk: Desk, path: str, **headers: str) -> Reply:
    return request(desk.hub.base_url, "GET", path, headers=headers)


def post_reply(desk: Desk, path: str, text: str, **headers: str) -> Reply:
    return request(desk.hub.base_url, "POST", path, urlencode({"text": text}),
                   {"Content-Type": "application/x-www-form-urlencoded", **headers})


def test_the_confirmation_links_the_private_page_and_says_when_we_answer(desk, lang):
    """The confirmation mail carries the private link and the plan's response time."""
    sender = f"opa-{lang}@example.org"
    desk.new_ticket(sender)
    confirmation = desk.mails_to(sender, 1)[0]
    assert get(desk, page_path(confirmation)).status == 200
    assert "We answer within 48 hours." in body_of(confirmation)


def test_the_private_page_shows_the_thread_without_notes(desk, lang):
    """The page shows the customer's mail and the answer, never the internal note, under a strict CSP."""
    sender = f"pat-{lang}@example.org"
    ref = desk.new_ticket(sender, "Invoices are empty since Monday.")
    desk.call("POST", f"/api/tickets/{ref}/messages", {"text": "Customer on legacy billing.", "internal": True}, user="sam")
    desk.call("POST", f"/api/tickets/{ref}/messages", {"text": "Fixed: please download it again."}, user="sam")
    mails = desk.mails_to(sender, 2)
    page = get(desk, page_path(mails[1]))
    assert page.status == 200 and "Invoices are empty since Monday." in page.text
    assert "Fixed: please download it again." in page.text and "legacy billing" not in page.text
    assert all("legacy billing" not in body_of(m) for m in mails)
    assert "script-src" not in page.header("Content-Security-Policy") and "default-src 'none'" in page.header("Content-Security-Policy")
    assert page.header("X-Robots-Tag") == "noindex, nofollow" and page.header("Set-Cookie") is None
    assert "<script" not in page.text and "We answered and are waiting for your reply." in page.text


def test_a_reply_on_the_private_page_reopens_the_ticket(desk, lang):
    """A message sent with the page's form joins the thread as web_in and makes the ticket open again."""
    sender = f"quin-{lang}@example.org"
    ref = desk.new_ticket(sender)
    desk.call("PATCH", f"/api/tickets/{ref}", {"status": "solved"}, user="sam")
    path = page_path(desk.mails_to(sender, 1)[0])
    sent = post_reply(desk, path, "It broke again this morning.")
    assert sent.status == 303 and sent.header("Location") == path + "?sent=1"
    ticket = desk.ticket(ref)
    assert ticket["status"] == "open" and ticket["due_at"]
    assert ticket["messages"][-1]["kind"] == "web_in" and ticket["messages"][-1]["text"] == "It broke again this morning."
    assert "It broke again this morning." in get(desk, path + "?sent=1").text


@pytest.fixture(scope="module")
def late_desk(redis_url, tmp_path_factory):
    """A desk that reopens no solved ticket (reopen_days = 0): every reply to one comes too late."""
    desk = Desk(redis_url, tmp_path_factory.mktemp("inbox-late"), INBOX + "\n[tickets]\nreopen_days = 0\n",
                DATABASES["ticket_inbox_late"], public=True)
    yield desk
    desk.stop()


def test_a_reply_on_the_private_page_to_a_long_solved_ticket_is_refused(late_desk, lang):
    """Past reopen_days the page, like a mail, does not reopen the request: it says how to ask again."""
    sender = f"una-{lang}@example.org"
    ref = late_desk.new_ticket(sender)
    late_desk.call("PATCH", f"/api/tickets/{ref}", {"status": "solved"}, user="sam")
    path = page_path(late_desk.mails_to(sender, 1)[0])
    refused = post_reply(late_desk, path, "One more thing.")
    assert refused.status == 409 and "start a chat" in refused.text
    ticket = late_desk.ticket(ref)
    assert ticket["status"] == "solved" and [m["kind"] for m in ticket["messages"]] == ["mail_in"]


def test_a_wrong_or_revoked_link_gets_404_and_no_hint(desk, lang):
    """A bad token, an unknown reference and a revoked link all get the same bare 404."""
    sender = f"rae-{lang}@example.org"
    ref = desk.new_ticket(sender)
    path = page_path(desk.mails_to(sender, 1)[0])
    token = path.rsplit("/", 1)[1]
    wrong = get(desk, f"/t/{ref}/{token[:-2]}xx")
    unknown = get(desk, f"/t/LC-ZZZZZZ/{token}")
    assert wrong.status == unknown.status == 404 and wrong.body == unknown.body and ref not in wrong.text
    assert post_reply(desk, f"/t/{ref}/{token[:-2]}xx", "hello").status == 404
    status, _ = desk.call("POST", f"/api/tickets/{ref}/link/revoke", {}, user="sam")
    assert status == 200
    revoked = get(desk, path)
    assert revoked.status == 404 and revoked.body == wrong.body
    desk.call("POST", f"/api/tickets/{ref}/messages", {"text": "Here is a new link."}, user="sam")
    fresh = page_path(desk.mails_to(sender, 2)[1])
    assert fresh != path and get(desk, fresh).status == 200


def test_the_private_page_is_rate_limited_per_address(desk, lang):
    """Past [limits] ticket_requests_per_minute one address gets 429, another is still served."""
    sender = f"sol-{lang}@example.org"
    desk.new_ticket(sender)
    path = page_path(desk.mails_to(sender, 1)[0])
    address = fresh_address()
    codes = [get(desk, path, **{"X-Forwarded-For": address}).status for _ in range(6)]
    assert codes == [200] * 5 + [429]
    assert get(desk, path, **{"X-Forwarded-For": fresh_address()}).status == 200


# --- the widget's ticket calls ---------------------------------------------------------------


def widget_call(desk: Desk, path: str, body: dict, **headers: str) -> Reply:
    """A call as the widget makes it: cross-origin, text/plain JSON, no cookie."""
    return request(desk.hub.base_url, "POST", path, json.dumps(body),
                   {"Content-Type": "text/plain;charset=UTF-8", "Origin": "https://shop.example", **headers})


def test_i_have_a_reference_answers_the_same_whether_or_not_it_matches(desk, lang):
    """A wrong address or reference gets the very answer a right one gets; only the right one is mailed, to the ticket's address."""
    sender = f"tom-{lang}@example.org"
    ref = desk.new_ticket(sender)
    desk.mails_to(sender, 1)
    wrong = widget_call(desk, "/api/widget/ticket-link", {"ref": ref, "email": f"eve-{lang}@example.org"})
    unknown = widget_call(desk, "/api/widget/ticket-link", {"ref": "LC-ZZZZZZ", "email": sender})
    right = widget_call(desk, "/api/widget/ticket-link", {"ref": ref.lower(), "email": sender.upper()})
    assert wrong.status == unknown.status == right.status == 202 and wrong.body == unknown.body == right.body
    assert right.header("Access-Control-Allow-Origin") == "*"
    link_mail = desk.mails_to(sender, 2)[1]
    assert ref in link_mail["Subject"] and get(desk, page_path(link_mail)).status == 200
    assert desk.smtp.to(f"eve-{lang}@example.org") == []


def test_i_have_a_reference_is_rate_limited_per_address(desk, lang):
    """Past [limits] ticket_links_per_hour one address gets 429 rate_limited."""
    address = fresh_address()
    codes = [widget_call(desk, "/api/widget/ticket-link", {"ref": "LC-ZZZZZZ", "email": f"x-{lang}@example.org"},
                         **{"X-Forwarded-For": address}) for _ in range(6)]
    assert [c.status for c in codes] == [202] * 5 + [429] and codes[-1].json()["error"] == "rate_limited"


def test_a_verified_customer_lists_and_answers_their_tickets(desk, lang):
    """With the site's identity token the widget gets the customer's open tickets (no notes) and adds a message."""
    sender = f"uma-{lang}@example.org"
    ref = desk.new_ticket(sender, "Calendar invites arrive twice.")
    desk.call("POST", f"/api/tickets/{ref}/messages", {"text": "Duplicate sync job.", "internal": True}, user="sam")
    desk.call("POST", f"/api/tickets/{ref}/messages", {"text": "Which client do you use?"}, user="sam")
    token = sign(TEST_SITE_SECRET, {"sub": "u-7", "email": sender, "plan": "free", "exp": int(time.time()) + 600})
    listed = widget_call(desk, "/api/widget/tickets", {"identity": token})
    assert listed.status == 200
    (ticket,) = listed.json()["tickets"]
    assert ticket["ref"] == ref and ticket["status"] == "pending"
    assert [m["text"] for m in ticket["messages"]] == ["Calendar invites arrive twice.", "Which client do you use?"]
    added = widget_call(desk, f"/api/widget/tickets/{ref}/messages", {"identity": token, "text": "Thunderbird 128."})
    assert added.status == 201 and added.json()["status"] == "open"
    assert desk.ticket(ref)["messages"][-1]["kind"] == "widget_in"
    other = sign(TEST_SITE_SECRET, {"sub": "u-8", "email": f"vic-{lang}@example.org", "plan": "free",
                                    "exp": int(time.time()) + 600})
    assert widget_call(desk, "/api/widget/tickets", {"identity": other}).json()["tickets"] == []
    assert widget_call(desk, f"/api/widget/tickets/{ref}/messages", {"identity": other, "text": "hi"}).status == 404
    assert widget_call(desk, "/api/widget/tickets", {"identity": token + "x"}).status == 401


def test_the_private_page_takes_files_the_agent_downloads(desk, lang):
    """A reply from the page may carry files: the page names them, the agent downloads them byte for byte."""
    sender = f"vic-{lang}@example.org"
    ref = desk.new_ticket(sender)
    path = page_path(desk.mails_to(sender, 1)[0])
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    boundary = "----livechat-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nThe error screen.\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"error.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{boundary}--\r\n".encode()
    sent = request(desk.hub.base_url, "POST", path, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert sent.status == 303
    last = desk.ticket(ref)["messages"][-1]
    assert last["kind"] == "web_in" and last["text"] == "The error screen."
    assert [(a["name"], a["size"]) for a in last["attachments"]] == [("error.png", len(png))]
    cookie, _ = desk.session("sam")
    download = request(desk.hub.base_url, "GET", last["attachments"][0]["url"], None, {"Cookie": cookie})
    assert download.status == 200 and download.body == png
    assert "error.png" in get(desk, path).text
