"""Ticket references such as ``LC-7K3F9Q``: short enough to read over the phone, quoted in
mail subjects, and not guessable (random, never sequential).

The alphabet is Crockford's base32 without the characters people confuse (0/O, 1/I/L, U),
so a reference copied by hand is still found. 30**6 (about 7e8) references; a collision is
caught by the ticket writer (tickets.open_ticket watches the ticket key) and retried.
"""

from __future__ import annotations

import re
import secrets

PREFIX = "LC-"
ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 6
REF_PATTERN = re.compile(rf"^{PREFIX}[{ALPHABET}]{{{LENGTH}}}$")


def new_ref() -> str:
    """A fresh random reference from the OS's CSPRNG (uniqueness is checked by the caller)."""
    return PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalize_ref(text: str) -> str | None:
    """The canonical reference for what a person typed ("lc-7k3f9q ", "LC-7K3F9Q"), or None
    when it is not a reference at all (so it can never reach a Redis key or a path)."""
    if not isinstance(text, str):
        return None
    candidate = text.strip().upper()
    return candidate if REF_PATTERN.match(candidate) else None
