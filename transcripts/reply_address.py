"""Signed reply addresses: `support+lc-7k3f9q-x4f2m9q1@example.org` names a ticket and proves
that the mail answers one the desk sent (pure code).

With `LIVECHAT_REPLY_ADDRESS=support+{token}@example.org` (a mailbox with plus-addressing),
every mail of a ticket carries such a `Reply-To`. A reply to it lands in that ticket whoever
sends it (the customer answering from another address of theirs, a colleague in copy),
because only someone who received our mail knows the token: it is the reference and an HMAC
of it under the desk's secret, checked in constant time. A forged or altered token is just
an unknown address, and the mail opens a ticket of its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from transcripts.refs import ALPHABET, LENGTH, PREFIX, normalize_ref

PLACEHOLDER = "{token}"
SIGNATURE_CHARS = 10  # base32 characters of HMAC-SHA256: 50 bits, checked in constant time
_TOKEN = re.compile(rf"({PREFIX}[{ALPHABET}]{{{LENGTH}}})-([a-z2-7]{{{SIGNATURE_CHARS}}})", re.IGNORECASE)


def valid_template(template: str) -> bool:
    local, _, domain = template.partition("@")
    return template.count(PLACEHOLDER) == 1 and PLACEHOLDER in local and bool(domain) and " " not in template


def _signature(secret: bytes, ref: str) -> str:
    digest = hmac.new(secret, f"reply-address:{ref}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode().lower()[:SIGNATURE_CHARS]


def address_for(template: str, secret: bytes, ref: str) -> str:
    """The reply address of one ticket (lower case: some mail systems fold local parts)."""
    return template.replace(PLACEHOLDER, f"{ref.lower()}-{_signature(secret, ref)}")


def ticket_of(addresses: list[str] | tuple[str, ...], template: str, secret: bytes) -> str | None:
    """The reference a genuine reply address among `addresses` names, if any."""
    local, _, domain = template.partition("@")
    before, _, after = local.partition(PLACEHOLDER)
    for address in addresses:
        candidate_local, _, candidate_domain = address.strip().lower().rpartition("@")
        if candidate_domain != domain.lower() or not candidate_local.startswith(before.lower()) \
                or not candidate_local.endswith(after.lower()):
            continue
        found = _TOKEN.fullmatch(candidate_local[len(before):len(candidate_local) - len(after)])
        ref = normalize_ref(found.group(1)) if found else None
        if ref and hmac.compare_digest(found.group(2).lower(), _signature(secret, ref)):
            return ref
    return None
