"""A visitor's email address: whether it can be mailed, and the hashed form that indexes
their chats and tickets (so erasure on request finds everything without a scan)."""

from __future__ import annotations

import hashlib
import re

# Deliberately plain (RFC 5322 dot-atom, ASCII): an address that fits a header unquoted.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\.[A-Za-z0-9-]{2,63}$")


def normalize_email(email: str | None) -> str:
    """The address as stored and compared: trimmed, lower-cased ("" when absent)."""
    return (email or "").strip().lower()


def is_mailable(email: str | None) -> bool:
    """True when we can send to this address without risking a malformed header."""
    value = (email or "").strip()
    return bool(value) and len(value) <= 254 and bool(_EMAIL.fullmatch(value))


def email_hash(email: str) -> str:
    """SHA-256 of the lower-cased address: the key suffix of chats_by_email/tickets_by_email."""
    return hashlib.sha256(normalize_email(email).encode("utf-8")).hexdigest()


def customer_hash(sub: str) -> str:
    """SHA-256 of a verified customer's id (the identity token's `sub`): the key suffix of
    tickets_by_customer."""
    return hashlib.sha256(sub.encode("utf-8")).hexdigest()
