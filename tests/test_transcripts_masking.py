"""Masking of card numbers and passwords before a message is stored."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from chat.chatlog import read_log
from transcripts.masking import CARD_PLACEHOLDER as CARD, MAX_GROUPS, PASSWORD_PLACEHOLDER as PASSWORD, mask
from tests.support.clients import agent, visitor


@pytest.mark.parametrize("number", [
    "4111111111111111",         # Visa test number, 16 digits
    "4111 1111 1111 1111",      # spaced
    "4111-1111-1111-1111",      # dashed
    "378282246310005",          # Amex, 15 digits
    "4222222222222",            # 13 digits
    "6011 0009 9013 9424",
    "4111.1111.1111.1111",      # dotted
    "4111  1111  1111  1111",   # double spaces
    "4111/1111/1111/1111",      # slashes
    "4111 - 1111 - 1111 - 1111",
    "4111\u20131111\u20131111\u20131111",  # en dashes
    "4111\u00a01111\u00a01111\u00a01111",  # no-break spaces
    "\uff14\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11",  # full-width digits
])
def test_luhn_valid_card_numbers_are_masked(number):
    """A Luhn-valid 13-19 digit run, with spaces, dots, dashes or slashes between groups, becomes a placeholder."""
    assert mask(f"my card is {number}, thanks") == f"my card is {CARD}, thanks"


@pytest.mark.parametrize("text", [
    "4111111111111112",                 # fails the Luhn check
    "order 123456789012",               # 12 digits: too short
    "ref 12345678901234567890123",      # 23 digits: not a card
    "call +32 475 12 34 56",            # a phone number
    "it costs 1234.56 EUR on 2024-11-22",
    "from 192.168.100.200 at 10:30",    # an address: 12 digits
    "4111 1111\n1111 1111",             # a line break ends a run
])
def test_other_numbers_are_kept(text):
    """Numbers that are not Luhn-valid card numbers stay as written."""
    assert mask(text) == text


def test_card_followed_by_security_code_is_masked():
    """A card number followed by other figures on the same run is still found."""
    assert mask("4111 1111 1111 1111 123") == f"{CARD} 123"


@pytest.mark.parametrize("text, expected", [
    ("password: hunter2", f"password: {PASSWORD}"),
    ("My Password = s3cret!  ", f"My Password = {PASSWORD}"),
    ("mot de passe : Motdepasse1", f"mot de passe : {PASSWORD}"),
    ("PASSWORD:abc def\nnext line", f"PASSWORD: {PASSWORD}\nnext line"),
    ("pwd:hunter2", f"pwd: {PASSWORD}"),
    ("my password is hunter2 thanks", f"my password is {PASSWORD}"),
    ("the password is: not", f"the password is: {PASSWORD}"),
    ("mon mot de passe est Soleil42", f"mon mot de passe est {PASSWORD}"),
    ("Passwort: geheim", f"Passwort: {PASSWORD}"),
])
def test_anything_after_password_is_masked_to_end_of_line(text, expected):
    """After "password:", "pwd:", "password is", "mot de passe :" the rest of the line is removed."""
    assert mask(text) == expected


def test_ordinary_text_is_returned_unchanged():
    """Text without secrets comes back as the very same string."""
    text = "Hello, I forgot my password and cannot log in since yesterday."
    assert mask(text) is text
    assert mask("") == ""


@pytest.mark.parametrize("text", [
    "my password is not accepted",
    "My password is wrong, I think",
    "mon mot de passe est bloqué",
    "mein Passwort ist falsch",
    "my password isn't working",
])
def test_a_sentence_about_the_password_is_kept(text):
    """"password is" followed by an ordinary word (not, wrong, bloqué...) is a sentence, not a secret."""
    assert mask(text) == text


def test_past_the_examined_groups_a_long_run_is_masked_whole():
    """A run with more digit groups than are examined one by one is masked, not let through."""
    text = "1 " * (MAX_GROUPS + 50) + "4111 1111 1111 1111 thanks"
    masked = mask(text)
    assert "4111" not in masked and masked.endswith(f"{CARD} thanks")
    assert masked.startswith("1 " * MAX_GROUPS)


@settings(max_examples=200, deadline=None)
@given(
    before=st.text(alphabet=st.characters(blacklist_categories=("Nd",)), max_size=40),
    after=st.text(alphabet=st.characters(blacklist_categories=("Nd",)), max_size=40),
    separator=st.sampled_from(["", " ", "-", ".", "/", "  ", " - ", "\u2013", "\u00a0", "\u3000"]),
)
def test_a_card_number_never_survives_whatever_surrounds_it(before, after, separator):
    """Any text around a spaced, dashed or plain card number: its digits never come out."""
    card = separator.join(["4111", "1111", "1111", "1111"])
    masked = mask(f"{before} {card} {after}")
    assert "4111" not in masked


async def test_a_visitor_message_reaches_the_agent_and_the_log_masked(hub, rds, lang):
    """A dotted card number and "my password is ..." sent over the visitor socket are masked for the agent and in Redis."""
    sam, _ = await agent(hub, rds, f"a-{lang}", [lang])
    ada, welcome = await visitor(hub, lang)
    await sam.expect("assigned")
    await ada.send(type="message", text="card 4111.1111.1111.1111\nmy password is hunter2", client_id="s1")
    expected = f"card {CARD}\nmy password is {PASSWORD}"
    assert (await sam.expect("message", chat_id=welcome["chat_id"], client_id="s1"))["text"] == expected
    [stored] = await read_log(rds, welcome["chat_id"])
    assert stored["text"] == expected
