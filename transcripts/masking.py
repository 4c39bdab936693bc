"""Mask secrets a visitor types into a chat before the message is stored: payment card
numbers and passwords. Agents, transcripts and ticket mails only ever see the placeholder.

Best effort, not a guarantee: it catches the ways people usually write these (docs/tickets.md,
"Masked secrets"), not every way a determined visitor could spell one.

Called by the hub for every message, on the event loop, so the work per message is small and
bounded whatever the text: ordinary text costs two quick scans (for long digit runs and for
password words); each digit group of a run long enough to hold a card number costs at most
seven O(1) checksum tests (on prefix sums); and past MAX_GROUPS such groups in one message,
what is left of those runs is masked whole without being looked at (fail closed: a card
number is never let through for want of time, and no chat message has that many).
"""

from __future__ import annotations

import re
from itertools import accumulate, islice

CARD_PLACEHOLDER = "[card number removed]"
PASSWORD_PLACEHOLDER = "[password removed]"

MIN_DIGITS, MAX_DIGITS = 13, 19
MAX_GROUPS = 100  # digit groups of card-length runs examined one by one per message

# Between the digit groups of a card number: one to three spaces of any width (no line
# break), dots, dashes of any kind, slashes, also in their full-width forms: "4111.1111.1111.1111",
# "4111  1111  1111  1111", "4111/1111/1111/1111". Digits are any decimal digits ("４１１１").
_SEPARATORS = (" \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"  # horizontal spaces
               "./\\-\u2010-\u2015\u2212\uff0d\uff0e\uff0f")       # dots, slashes, dashes
# A run of digit groups, one to three separators apart, with at least MIN_DIGITS digits (the
# look-ahead counts them). The first digit is matched before the look back at the one before
# it: a search that starts with a look-behind tries it at every position of the text, four
# times slower on plain text.
_DIGIT_RUN = re.compile(rf"\d(?<!\d\d)(?=(?:[{_SEPARATORS}]{{0,3}}\d){{{MIN_DIGITS - 1}}})"
                        rf"\d*(?:[{_SEPARATORS}]{{1,3}}\d+)*")
_CARD_LENGTH = re.compile(rf"\d(?:[{_SEPARATORS}]{{0,3}}\d){{{MIN_DIGITS - 1}}}")  # enough digits from here
_GROUP = re.compile(r"\d+")
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # a digit doubled by the Luhn rule, digits of the result summed
_AS_VALUE = bytes.maketrans(b"0123456789", bytes(range(10)))
_AS_DOUBLED = bytes.maketrans(b"0123456789", bytes(_DOUBLED))

# "password: x", "Password = x", "pwd:x", "mot de passe : x", "Passwort: x", "my password is x"
# (also "est", "ist"); the rest of the line goes. The look-ahead on the first letter lets the
# search pass over every other position at once.
_PASSWORD = re.compile(
    r"(?=[pmk])(\b(?:pass(?:word|wd|phrase)|pwd|pw|passwort|kennwort|mot[ -]de[ -]passe)"
    r"(?:\s*[:=]|[^\S\n]+(is|est|ist)\b(?:[^\S\n]*[:=])?))"
    r"[^\S\n]*(\S[^\n]*)",
    re.IGNORECASE,
)
# After "password is", words that start a sentence about the password rather than the password:
# "my password is not accepted", "mon mot de passe est bloqué", "mein Passwort ist falsch".
_ORDINARY = frozenset("""
    not no never wrong incorrect invalid expired too being been still correct right blocked locked
    reset case changed different same long short weak strong missing lost empty working ok okay
    fine required rejected refused now also the a an my your in on at for set saved stored sent
    there here what how why always only
    pas plus jamais faux invalide expiré bloqué trop le la mon ton bon toujours
    nicht falsch ungültig abgelaufen gesperrt zu der die das mein richtig immer noch
""".split())


def _luhn_sums(groups: list[str]) -> tuple[list[int], list[int]]:
    """Prefix sums for the Luhn check of any slice of these digits. The rule doubles every
    second digit counted from the right, so a slice whose last digit has an even index uses
    ``even`` (even indexes as they are, odd ones doubled), one ending on an odd index ``odd``."""
    joined = "".join(groups)
    if not joined.isascii():
        joined = "".join(str(int(ch)) for ch in joined)  # "４" is 4
    digits = joined.encode()
    values, doubled = digits.translate(_AS_VALUE), digits.translate(_AS_DOUBLED)
    even, odd = bytearray(values), bytearray(values)
    even[1::2] = doubled[1::2]
    odd[0::2] = doubled[0::2]
    return [0, *accumulate(even)], [0, *accumulate(odd)]


def _luhn_valid(even: list[int], odd: list[int], start: int, end: int) -> bool:
    """Whether digits[start:end] pass the Luhn check, from the sums of _luhn_sums."""
    sums = even if (end - 1) % 2 == 0 else odd
    return (sums[end] - sums[start]) % 10 == 0


def _card_spans(run: re.Match[str], allowance: int) -> tuple[list[tuple[int, int]], int, int | None]:
    """Card numbers inside one digit run, looking at no more than ``allowance`` of its groups
    as a card's first group: (their spans in the text, groups used, where in the text the part
    left unexamined begins, or None). A run may hold a card number next to other figures
    ("4111111111111111 123"), so whole groups are tried as windows of 13 to 19 digits, the
    longest valid window from each start winning."""
    if run.group().isdecimal():  # one group, the way a card number is most often written
        digits = run.group()
        if len(digits) <= MAX_DIGITS and _luhn_valid(*_luhn_sums([digits]), 0, len(digits)):
            return [run.span()], 1, None
        return [], 1, None
    found = list(islice(_GROUP.finditer(run.group()), allowance + MAX_DIGITS))
    # A group longer than a card number is in no window: its first MAX_DIGITS + 1 digits are
    # enough to keep every window that holds it too long, and save summing a 4,000-digit group.
    groups = [g.group()[: MAX_DIGITS + 1] for g in found]
    even, odd = _luhn_sums(groups)
    ends = list(accumulate(map(len, groups)))  # digits up to the end of each group
    offset = run.start()
    spans: list[tuple[int, int]] = []
    i = first_long = 0  # first_long: the first group that ends a window long enough
    while i < len(groups) and i < allowance:
        start = ends[i - 1] if i else 0
        first_long = max(first_long, i)
        while first_long < len(groups) and ends[first_long] - start < MIN_DIGITS:
            first_long += 1
        best, j = None, first_long
        while j < len(groups) and ends[j] - start <= MAX_DIGITS:
            if _luhn_valid(even, odd, start, ends[j]):
                best = j
            j += 1
        if best is None:
            i += 1
        else:
            spans.append((offset + found[i].start(), offset + found[best].end()))
            i = best + 1
    if i < len(groups):
        return spans, i, offset + found[i].start()
    more = _GROUP.search(run.group(), found[-1].end())  # groups beyond those taken from the run
    return spans, i, offset + more.start() if more else None


def _mask_cards(text: str) -> str:
    spans: list[tuple[int, int]] = []
    allowance = MAX_GROUPS
    for run in _DIGIT_RUN.finditer(text):
        if allowance <= 0:
            spans.append(run.span())  # past the budget: fail closed
            continue
        found, used, unexamined = _card_spans(run, allowance)
        allowance -= max(used, 1)
        spans += found
        if unexamined is not None and _CARD_LENGTH.match(text, unexamined, run.end()):
            spans.append((unexamined, run.end()))
    if not spans:
        return text
    out, last = [], 0
    for start, end in spans:
        out.append(text[last:start])
        out.append(CARD_PLACEHOLDER)
        last = end
    out.append(text[last:])
    return "".join(out)


def _password_replacement(match: re.Match[str]) -> str:
    said = match.group(1)
    if match.group(2) and said[-1] not in ":=":  # "password is ...": is what follows one?
        if match.group(3).split(None, 1)[0].strip(".,;:!?'\"()").lower() in _ORDINARY:
            return match.group()
    return said + " " + PASSWORD_PLACEHOLDER


def _mask_passwords(text: str) -> str:
    lower = text.lower()
    if "pass" not in lower and "pw" not in lower and "kennwort" not in lower:  # "mot de passe" too
        return text
    return _PASSWORD.sub(_password_replacement, text)


def mask(text: str) -> str:
    """The text with card numbers (Luhn-valid runs of 13-19 digits, spaces, dots, dashes or
    slashes allowed between groups) and whatever follows "password:" or "password is" on its
    line replaced by placeholders."""
    if not text:
        return text
    return _mask_passwords(_mask_cards(text))
