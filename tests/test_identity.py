"""Identity tokens: only a valid token signed by the site gives a plan, a name, an email and
`verified`; anything else leaves the visitor unverified on the lowest plan."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

import chat.identity
from chat.cli import main
from chat.identity import IdentityError, sign, verify
from tests.support.clients import token
from tests.support.redis import route
from tests.support.servers import TEST_SITE_SECRET

PLANS = ("free", "plus", "professional", "visionary")
NOW = 1_750_000_000.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def payload(**extra) -> dict:
    return {"sub": "user-42", "plan": "visionary", "exp": NOW + 60, **extra}


# --- the token itself -----------------------------------------------------------------


def test_token_format_is_b64url_payload_dot_b64url_hmac():
    """sign() produces exactly docs/protocol.md's format, without base64 padding."""
    body = {"sub": "user-42", "plan": "plus", "exp": 1732300000, "name": "Zoë"}
    tok = sign("k", body)
    head, mac = tok.split(".")
    assert "=" not in tok
    assert json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))) == body
    assert mac == b64url(hmac.new(b"k", head.encode(), hashlib.sha256).digest())


def test_valid_token_gives_sub_plan_name_and_email():
    """A well-signed, unexpired token with a known plan is accepted with its claims."""
    who = verify("k", sign("k", payload(name="Ada", email="ada@example.org")), PLANS, NOW)
    assert (who.sub, who.plan, who.name, who.email) == ("user-42", "visionary", "Ada", "ada@example.org")


def test_token_minted_by_hand_like_a_site_backend_is_accepted():
    """A token built with nothing but hmac/base64/json (as docs/routing.md shows) verifies."""
    body = b64url(json.dumps({"sub": "7", "plan": "plus", "exp": int(NOW) + 60}).encode())
    mac = b64url(hmac.new(b"k", body.encode(), hashlib.sha256).digest())
    assert verify("k", f"{body}.{mac}", PLANS, NOW).plan == "plus"


BAD_TOKENS = [
    (sign("other key", payload()), "signed with another key"),
    (sign("k", payload()).replace(".", "x."), "payload changed after signing"),
    (b64url(json.dumps(payload(plan="visionary")).encode()) + "." + sign("k", payload(plan="free")).split(".")[1],
     "signature of another payload"),
    (sign("k", payload(exp=NOW - 1)), "expired"),
    (sign("k", payload(exp=NOW)), "expires this very second"),
    (sign("k", {"sub": "u", "plan": "plus"}), "no exp"),
    (sign("k", payload(exp="2099-01-01")), "exp not a number"),
    (sign("k", payload(exp=NOW + 86400 + 60)), "exp beyond the default maximum lifetime"),
    (sign("k", payload(plan="platinum")), "unknown plan"),
    (sign("k", {"plan": "plus", "exp": NOW + 60}), "no sub"),
    (sign("k", [1, 2]), "payload not an object"),
    ("not-a-token", "no dot"),
    ("a.b.c", "two dots"),
    ("", "empty"),
    (None, "null"),
    (12345, "a number"),
    ("é." + "x" * 43, "not ascii"),
]


@pytest.mark.parametrize("tok", [pytest.param(tok, id=why.replace(" ", "-")) for tok, why in BAD_TOKENS])
def test_bad_tokens_are_refused(tok):
    """Forged, tampered, expired, unknown-plan and malformed tokens raise IdentityError."""
    with pytest.raises(IdentityError):
        verify("k", tok, PLANS, NOW)


def test_no_site_secret_accepts_no_token():
    """A hub without LIVECHAT_SITE_SECRET verifies nothing (an empty key would be forgeable)."""
    with pytest.raises(IdentityError):
        verify("", sign("", payload()), PLANS, NOW)


def test_signature_is_compared_in_constant_time(monkeypatch):
    """The MAC check goes through hmac.compare_digest, not ==."""
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(chat.identity.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    verify("k", sign("k", payload()), PLANS, NOW)
    with pytest.raises(IdentityError):
        verify("k", sign("j", payload()), PLANS, NOW)
    assert len(calls) == 2


# --- `livechat token` -------------------------------------------------------------------


def livechat(monkeypatch, capsys, *argv: str) -> tuple[int | str | None, str, str]:
    """Run the `livechat` command line in this process (exit code, stdout, stderr)."""
    monkeypatch.setenv("LIVECHAT_SITE_SECRET", TEST_SITE_SECRET)
    monkeypatch.delenv("LIVECHAT_CONFIG", raising=False)
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_livechat_token_prints_a_token_the_hub_accepts(monkeypatch, capsys):
    """`livechat token` signs with LIVECHAT_SITE_SECRET; the result verifies with its claims."""
    code, out, _ = livechat(monkeypatch, capsys, "token", "--sub", "user-7", "--plan", "professional",
                            "--email", "bo@example.org", "--name", "Bo", "--ttl", "600")
    assert code == 0
    who = verify(TEST_SITE_SECRET, out.strip(), PLANS, time.time())
    assert (who.sub, who.plan, who.email, who.name) == ("user-7", "professional", "bo@example.org", "Bo")
    assert out.count("\n") == 1


def test_livechat_token_refuses_a_ttl_the_hub_would_refuse(monkeypatch, capsys):
    """`livechat token --ttl` past [limits] identity_max_ttl fails instead of printing a dead token."""
    code, out, _ = livechat(monkeypatch, capsys, "token", "--sub", "u", "--plan", "plus", "--ttl", str(86400 + 1))
    assert code not in (0, None) and "identity_max_ttl" in str(code) and out == ""


def test_livechat_token_refuses_an_unknown_plan(monkeypatch, capsys):
    """`livechat token --plan platinum` fails and lists the plans there are."""
    code, out, _ = livechat(monkeypatch, capsys, "token", "--sub", "u", "--plan", "platinum")
    assert code not in (0, None) and "visionary" in str(code) and out == ""


# --- through the hub ---------------------------------------------------------------------


async def test_valid_token_gives_plan_verified_name_and_email(hub, rds, lang, sockets):
    """The agent sees the token's plan, name and email and verified true, not what hello claims."""
    sam, _ = await sockets.agent(hub, f"a-{lang}", [lang])
    tok = token("visionary", sub="cust-9", name="Grace", email="grace@example.org")
    _, welcome = await sockets.visitor(hub, lang, identity=tok, name="Mallory", email="mallory@example.org")
    assert (welcome["plan"], welcome["verified"]) == ("visionary", True)
    visitor = (await sam.expect("assigned", chat_id=welcome["chat_id"]))["visitor"]
    assert (visitor["plan"], visitor["verified"], visitor["name"], visitor["email"]) == \
        ("visionary", True, "Grace", "grace@example.org")


async def test_verified_visitor_cannot_add_an_email_the_token_lacks(hub, rds, lang, sockets):
    """A token without email gives no email: a hello email cannot ride on the verified flag."""
    sam, _ = await sockets.agent(hub, f"a-{lang}", [lang])
    _, welcome = await sockets.visitor(hub, lang, identity=token("plus"), email="boss@example.org")
    visitor = (await sam.expect("assigned", chat_id=welcome["chat_id"]))["visitor"]
    assert visitor["verified"] is True and visitor["email"] == ""


@pytest.mark.parametrize("kind", ["forged", "expired", "unknown_plan", "exp_a_year_away"])
async def test_bad_token_leaves_visitor_unverified_on_lowest_plan(hub, rds, lang, sockets, kind):
    """A forged, expired, unknown-plan or too long-lived token: bad_identity, then an unverified free chat."""
    tok = {"forged": token("visionary", secret="guessed-secret"),
           "expired": token("visionary", ttl=-60),
           "unknown_plan": token("platinum"),
           "exp_a_year_away": token("visionary", ttl=365 * 86400)}[kind]
    sam, _ = await sockets.agent(hub, f"a-{lang}", [lang])
    ada, welcome = await sockets.visitor(hub, lang, identity=tok, name="Ada")
    assert (await ada.expect("error"))["code"] == "bad_identity"
    assert (welcome["plan"], welcome["verified"], welcome["status"]) == ("free", False, "queued")
    visitor = (await sam.expect("assigned", chat_id=welcome["chat_id"]))["visitor"]
    assert (visitor["plan"], visitor["verified"], visitor["name"]) == ("free", False, "Ada")


async def test_plan_field_in_hello_is_ignored(hub, rds, lang, sockets):
    """hello {"plan": "visionary"} without a token is a free visitor, routed at its real arrival."""
    await sockets.agent(hub, f"a-{lang}", [lang], max_chats=1)
    await sockets.visitor(hub, lang)  # fills the agent, so the next chat waits in line
    ada, welcome = await sockets.visitor(hub, lang, plan="visionary", verified=True)
    assert (welcome["plan"], welcome["verified"]) == ("free", False)
    assert not [f for f in ada.received if f.get("type") == "error"]
    await ada.expect("queued", position=1)
    waiting = await route(rds, welcome["chat_id"])
    assert waiting["plan"] == "free" and waiting["score"] == waiting["arrived_at"]


async def test_token_name_with_a_line_break_reaches_the_agent_as_one_printable_line(hub, rds, lang, sockets):
    """A token's name holding a NEL and a bidi override is shown to the agent without them."""
    sam, _ = await sockets.agent(hub, f"a-{lang}", [lang])
    _, welcome = await sockets.visitor(hub, lang, identity=token("plus", name="Eve\u0085X\u202e", email="eve@example.org"))
    visitor = (await sam.expect("assigned", chat_id=welcome["chat_id"]))["visitor"]
    assert visitor["name"] == "Eve X"
