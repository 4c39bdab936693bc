"""The ticket desk: agents answer tickets from the API, the answer is mailed threaded, notes
stay inside, customers' replies reopen, waiting tickets are solved, and every ticket has a
response target in its plan's business hours."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from chat.config import ConfigError, parse_config
from transcripts.targets import due_at
from tests.support.desk import Desk
from tests.support.mail import customer_reply
from tests.support.redis import DATABASES
from tests.support.servers import TEST_CONFIG
from tests.support.waiting import wait_until

# Tickets of the free plan are due two seconds after the customer wrote, so that a test sees
# one breach; waiting tickets are solved after about two seconds without an answer.
FAST = TEST_CONFIG.replace('[plans.free]\nhead_start = 0\n', '[plans.free]\nhead_start = 0\nfirst_response = "2s"\n') + """
[tickets]
pending_days = 0.00002
"""


@pytest.fixture(scope="module")
def desk(redis_url, tmp_path_factory):
    desk = Desk(redis_url, tmp_path_factory.mktemp("desk"), TEST_CONFIG, DATABASES["ticket_desk"])
    yield desk
    desk.stop()


@pytest.fixture(scope="module")
def fast_desk(redis_url, tmp_path_factory):
    desk = Desk(redis_url, tmp_path_factory.mktemp("fast-desk"), FAST, DATABASES["ticket_desk_fast"])
    yield desk
    desk.stop()


# --- answering ---------------------------------------------------------------------------


def test_an_agent_reply_is_mailed_threaded_and_makes_the_ticket_pending(desk, lang):
    """An agent's answer goes to the customer with the reference and the thread's headers."""
    ref = desk.new_ticket(f"ann-{lang}@example.org")
    confirmation = desk.mails_to(f"ann-{lang}@example.org", 1)[0]
    status, message = desk.call("POST", f"/api/tickets/{ref}/messages", {"text": "Please update to 4.2."}, user="sam")
    assert status == 201 and message["kind"] == "mail_out" and message["name"] == "Sam"
    answer = desk.mails_to(f"ann-{lang}@example.org", 2)[1]
    assert ref in answer["Subject"] and answer["Subject"].startswith("Re: ")
    first_in = desk.ticket(ref)["transcript"][0]
    assert answer["In-Reply-To"] == first_in["message_id"]
    assert first_in["message_id"] in answer["References"] and "Please update to 4.2." in answer.get_content()
    assert answer["Auto-Submitted"] is None and confirmation["Message-ID"] != answer["Message-ID"]
    ticket = desk.ticket(ref)
    assert ticket["status"] == "pending" and ticket["due_at"] is None and ticket["first_response_at"]


def test_a_note_is_never_mailed(desk, lang):
    """An internal note stays in the thread; the customer only ever gets the public answer."""
    ref = desk.new_ticket(f"ben-{lang}@example.org")
    status, note = desk.call("POST", f"/api/tickets/{ref}/messages",
                             {"text": "Customer is on the old server.", "internal": True}, user="sam")
    assert status == 201 and note["kind"] == "note"
    desk.call("POST", f"/api/tickets/{ref}/messages", {"text": "Fixed on our side."}, user="sam")
    mails = desk.mails_to(f"ben-{lang}@example.org", 2)
    assert all("old server" not in m.get_body(("plain",)).get_content() for m in mails)
    assert [m["kind"] for m in desk.ticket(ref)["messages"]] == ["mail_in", "note", "mail_out"]


def test_a_customer_reply_puts_the_ticket_back_on_our_side(desk, lang):
    """pending → open when the customer answers, with the next response due."""
    ref = desk.new_ticket(f"cal-{lang}@example.org")
    desk.call("POST", f"/api/tickets/{ref}/messages", {"text": "Which version do you use?"}, user="sam")
    answer = desk.mails_to(f"cal-{lang}@example.org", 2)[1]
    assert desk.mail_in(customer_reply(answer, f"cal-{lang}@example.org", "Version 4.1.")) == ["stored", ref]
    ticket = desk.ticket(ref)
    assert ticket["status"] == "open" and ticket["due_at"] > ticket["first_response_at"]
    assert [m["text"] for m in ticket["messages"]][-1] == "Version 4.1."


def test_a_reply_to_a_solved_ticket_reopens_it(desk, lang):
    """Within reopen_days a customer's reply opens the solved ticket again."""
    ref = desk.new_ticket(f"dan-{lang}@example.org")
    confirmation = desk.mails_to(f"dan-{lang}@example.org", 1)[0]
    assert desk.call("PATCH", f"/api/tickets/{ref}", {"status": "solved"}, user="sam")[1]["status"] == "solved"
    assert desk.mail_in(customer_reply(confirmation, f"dan-{lang}@example.org", "It broke again.")) == ["stored", ref]
    assert desk.ticket(ref)["status"] == "open"


def test_a_late_reply_to_a_solved_ticket_opens_a_linked_one(desk, lang, tmp_path):
    """Past reopen_days the reply starts a new ticket that names the old one."""
    ref = desk.new_ticket(f"eda-{lang}@example.org")
    confirmation = desk.mails_to(f"eda-{lang}@example.org", 1)[0]
    desk.call("PATCH", f"/api/tickets/{ref}", {"status": "solved"}, user="sam")
    no_reopening = tmp_path / "desk.toml"
    no_reopening.write_text(TEST_CONFIG + "\n[tickets]\nreopen_days = 0\n")
    outcome, new = desk.mail_in(customer_reply(confirmation, f"eda-{lang}@example.org", "Same again."), no_reopening)
    assert outcome == "opened" and new != ref
    assert desk.ticket(new)["previous_ref"] == ref and desk.ticket(ref)["status"] == "solved"


def test_status_and_assignee_change_and_the_list_filters_on_them(desk, lang):
    """PATCH assigns a ticket; ?assignee=me lists it for that agent only; ?q finds it by address."""
    ref = desk.new_ticket(f"fox-{lang}@example.org")
    status, ticket = desk.call("PATCH", f"/api/tickets/{ref}", {"assignee": "kim"}, user="sam")
    assert status == 200 and ticket["assignee"] == "kim"
    mine = desk.call("GET", "/api/tickets?assignee=me", user="kim")[1]["tickets"]
    assert ref in [t["ref"] for t in mine]
    assert ref not in [t["ref"] for t in desk.call("GET", "/api/tickets?assignee=me", user="sam")[1]["tickets"]]
    found = desk.call("GET", f"/api/tickets?q=fox-{lang}", user="sam")[1]["tickets"]
    assert [t["ref"] for t in found] == [ref]
    assert desk.call("PATCH", f"/api/tickets/{ref}", {"assignee": "nobody-here"}, user="sam")[0] == 400


def test_changes_need_the_csrf_token(desk, lang):
    """A reply without the session's X-CSRF-Token is refused and nothing is stored."""
    ref = desk.new_ticket(f"gus-{lang}@example.org")
    cookie, _ = desk.session("sam")
    status, _ = desk.call("POST", f"/api/tickets/{ref}/messages", {"text": "hi"}, cookie=cookie)
    assert status == 403 and len(desk.ticket(ref)["messages"]) == 1


def test_the_list_is_ordered_by_when_the_answer_is_due(desk, lang):
    """Open tickets come soonest-due first: an emergency target beats an older free ticket."""
    older = desk.new_ticket(f"hal-{lang}@example.org")
    newer = desk.new_ticket(f"ida-{lang}@example.org")
    listed = [t["ref"] for t in desk.call("GET", "/api/tickets?status=open&per_page=200", user="sam")[1]["tickets"]]
    assert listed.index(older) < listed.index(newer)
    dues = [t["due_at"] for t in desk.call("GET", "/api/tickets?status=open&per_page=200", user="sam")[1]["tickets"]]
    assert dues == sorted(dues)


# --- waiting, breaching --------------------------------------------------------------------


def test_a_ticket_waiting_for_the_customer_too_long_is_solved_with_a_mail(fast_desk, lang):
    """pending past pending_days becomes solved, and the customer is told how to reopen it."""
    ref = fast_desk.new_ticket(f"jo-{lang}@example.org")
    fast_desk.call("POST", f"/api/tickets/{ref}/messages", {"text": "Does it work now?"}, user="sam")
    wait_until(lambda: fast_desk.ticket(ref)["status"] == "solved", 30, 0.1, "the ticket to be solved")
    notice = fast_desk.mails_to(f"jo-{lang}@example.org", 3)[2]
    assert ref in notice["Subject"] and notice["Auto-Submitted"] == "auto-replied"


def test_supervisors_see_breached_tickets_live(fast_desk, lang):
    """A ticket past its target shows in /api/queue and /metrics as breached."""
    ref = fast_desk.new_ticket(f"kai-{lang}@example.org")

    def breached() -> bool:
        snap = fast_desk.call("GET", "/api/queue", user="boss")[1]
        return snap["tickets_breached"] >= 1 and any(t["ref"] == ref and t["breached"]
                                                      for t in snap["tickets_soonest_due"])

    wait_until(breached, 30, 0.1, "the ticket to breach")
    assert fast_desk.ticket(ref)["breached"] is True
    with urllib.request.urlopen(fast_desk.hub.base_url + "/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert any(line.startswith("livechat_tickets_breached ") and float(line.split()[1]) >= 1
               for line in metrics.splitlines())


# --- response targets (pure) --------------------------------------------------------------

OFFICE = """
[plans.free]
hours = "office"
first_response = "8h"
[plans.visionary]
hours = "24/7"
first_response = "2h"
[schedules.office]
tz = "Europe/Brussels"
days = ["mon", "tue", "wed", "thu", "fri"]
opens = "09:00"
closes = "17:00"
holidays = ["2026-12-25"]
"""


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Brussels")).timestamp()


def local(ts: float) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo("Europe/Brussels")).strftime("%a %Y-%m-%d %H:%M")


def test_a_friday_evening_free_ticket_is_due_after_the_weekend():
    """Eight office hours from Friday 18:00 end on Monday at 17:00."""
    config = parse_config(OFFICE)
    assert local(due_at(config, {"plan": "free"}, at("2026-11-27T18:00"), False)) == "Mon 2026-11-30 17:00"


def test_a_visionary_ticket_counts_every_hour():
    """The 24/7 plan's two hours from Friday 18:00 end at 20:00 the same evening."""
    config = parse_config(OFFICE)
    assert local(due_at(config, {"plan": "visionary"}, at("2026-11-27T18:00"), False)) == "Fri 2026-11-27 20:00"


def test_holidays_are_not_business_time():
    """A ticket on Christmas Eve afternoon skips Christmas Day."""
    config = parse_config(OFFICE)
    assert local(due_at(config, {"plan": "free"}, at("2026-12-24T15:00"), False)) == "Mon 2026-12-28 15:00"


def test_a_countrys_public_holidays_are_not_business_time():
    """holidays = ["BE"] closes the desk on Belgium's public holidays: Christmas Day is skipped."""
    config = parse_config(OFFICE.replace('holidays = ["2026-12-25"]', 'holidays = ["BE"]'))
    assert local(due_at(config, {"plan": "free"}, at("2026-12-24T15:00"), False)) == "Mon 2026-12-28 15:00"


def test_an_unknown_country_code_is_a_configuration_error():
    """A holiday entry that is neither a date nor a known country stops the desk with a clear error."""
    with pytest.raises(ConfigError, match="holidays"):
        parse_config(OFFICE.replace('holidays = ["2026-12-25"]', 'holidays = ["XX"]'))


def test_an_emergency_is_due_within_the_emergency_target_around_the_clock():
    """Emergencies count [tickets] emergency_response (default 1 h), even on a Sunday night."""
    config = parse_config(OFFICE)
    sunday = at("2026-11-29T23:30")
    assert due_at(config, {"plan": "free", "emergency": True}, sunday, False) == sunday + 3600


def test_next_response_targets_apply_after_the_first_answer():
    """next_response (here 1 h on 24/7) counts once an agent has answered."""
    config = parse_config(OFFICE.replace('first_response = "2h"', 'first_response = "2h"\nnext_response = "1h"'))
    start = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc).timestamp()
    assert due_at(config, {"plan": "visionary"}, start, True) == start + 3600


def test_the_ticket_json_carries_no_store_bookkeeping(desk, lang):
    """GET /api/tickets/{ref} shows the ticket, not the store's revision or mail fingerprints."""
    ticket = desk.ticket(desk.new_ticket(f"zed-{lang}@example.org"))
    assert not {"rev", "mail_fingerprint", "fingerprint_ttl"} & set(ticket)
