"""Masking of card numbers and passwords before a message is stored."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from transcripts.masking import CARD_PLACEHOLDER as CARD, PASSWORD_PLACEHOLDER as PASSWORD, luhn_valid, mask


@pytest.mark.parametrize("number", [
    "4111111111111111",         # Visa test number, 16 digits
    "4111 1111 1111 1111",      # spaced
    "4111-1111-1111-1111",      # dashed
    "378282246310005",          # Amex, 15 digits
    "4222222222222",            # 13 digits
    "6011 0009 9013 9424",
])
def test_luhn_valid_card_numbers_are_masked(number):
    """A Luhn-valid 13-19 digit run, with spaces or dashes between groups, becomes a placeholder."""
    assert mask(f"my card is {number}, thanks") == f"my card is {CARD}, thanks"


@pytest.mark.parametrize("text", [
    "4111111111111112",                 # fails the Luhn check
    "order 123456789012",               # 12 digits: too short
    "ref 12345678901234567890123",      # 23 digits: not a card
    "call +32 475 12 34 56",            # a phone number
    "it costs 1234.56 EUR on 2024-11-22",
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
])
def test_anything_after_password_is_masked_to_end_of_line(text, expected):
    """After "password:", "password =", "mot de passe :" the rest of the line is removed."""
    assert mask(text) == expected


def test_ordinary_text_is_returned_unchanged():
    """Text without secrets comes back as the very same string."""
    text = "Hello, I forgot my password and cannot log in since yesterday."
    assert mask(text) is text
    assert mask("") == ""


def test_luhn_check():
    """The checksum itself."""
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")


@settings(max_examples=200, deadline=None)
@given(
    before=st.text(alphabet=st.characters(blacklist_categories=("Nd",)), max_size=40),
    after=st.text(alphabet=st.characters(blacklist_categories=("Nd",)), max_size=40),
    separator=st.sampled_from(["", " ", "-"]),
)
def test_a_card_number_never_survives_whatever_surrounds_it(before, after, separator):
    """Any text around a spaced, dashed or plain card number: its digits never come out."""
    card = separator.join(["4111", "1111", "1111", "1111"])
    masked = mask(f"{before} {card} {after}")
    assert "4111" not in masked
