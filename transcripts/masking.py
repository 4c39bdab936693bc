"""Mask secrets a visitor types into a chat before the message is stored: payment card
numbers and passwords. Agents, transcripts and ticket mails only ever see the placeholder.

Called by the hub for every message, so ordinary text must cost next to nothing: two
precompiled searches decide that there is nothing to look at.
"""

from __future__ import annotations

import re

CARD_PLACEHOLDER = "[card number removed]"
PASSWORD_PLACEHOLDER = "[password removed]"

# A run of at least 13 ASCII digits, groups separated by one space or dash ("4111 1111-1111 1111").
_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9]+(?:[ -][0-9]+)*(?![0-9])")
_LONG_ENOUGH = re.compile(r"[0-9](?:[ -]?[0-9]){12}")
_GROUP = re.compile(r"[0-9]+")
# "password: x", "Password = x", "mot de passe : x", "passphrase:x"; the rest of the line goes.
_PASSWORD = re.compile(
    r"(\b(?:pass(?:word|wd|phrase)|mot[ -]de[ -]passe)\s*[:=])[^\S\n]*(\S[^\n]*)",
    re.IGNORECASE,
)
_MAYBE_PASSWORD = re.compile(r"pass", re.IGNORECASE)  # also covers "mot de passe"

MIN_DIGITS, MAX_DIGITS = 13, 19


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_spans(run: re.Match[str]) -> list[tuple[int, int]]:
    """Spans (in the text) of the card numbers inside one digit run. A run may hold a card
    number next to other figures ("4111111111111111 123"), so whole groups are tried as
    windows, the longest valid window from each start winning."""
    groups = [(m.start() + run.start(), m.end() + run.start(), m.group()) for m in _GROUP.finditer(run.group())]
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(groups):
        best = None
        digits = ""
        for j in range(i, len(groups)):
            digits += groups[j][2]
            if len(digits) > MAX_DIGITS:
                break
            if len(digits) >= MIN_DIGITS and luhn_valid(digits):
                best = j
        if best is None:
            i += 1
        else:
            spans.append((groups[i][0], groups[best][1]))
            i = best + 1
    return spans


def _mask_cards(text: str) -> str:
    if not _LONG_ENOUGH.search(text):
        return text
    spans = [span for run in _DIGIT_RUN.finditer(text) for span in _card_spans(run)]
    if not spans:
        return text
    out, last = [], 0
    for start, end in spans:
        out.append(text[last:start])
        out.append(CARD_PLACEHOLDER)
        last = end
    out.append(text[last:])
    return "".join(out)


def _mask_passwords(text: str) -> str:
    if not _MAYBE_PASSWORD.search(text):
        return text
    return _PASSWORD.sub(lambda m: f"{m.group(1)} {PASSWORD_PLACEHOLDER}", text)


def mask(text: str) -> str:
    """The text with card numbers (Luhn-valid runs of 13-19 digits, spaces or dashes allowed
    between groups) and whatever follows "password:" on its line replaced by placeholders."""
    if not text:
        return text
    return _mask_passwords(_mask_cards(text))
