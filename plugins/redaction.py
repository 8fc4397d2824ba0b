"""Built-in enrichment: redact e-mail addresses, phone numbers, payment card numbers and IBANs.

What leaves the system is redacted: an item's text (``text_redacted``, shown in the dashboard, the API and
tickets; the original stays in the database for embedding only), and its url and every string inside its
metadata, which are redacted in place before anything of a draft is stored (``redact_item``, called for
every draft, also re-sent ones whose metadata merges in). We redact generously: a false positive costs a
word, a false negative leaks data. Candidates are checked where a check exists, so that order numbers and
dates are kept: cards by the Luhn checksum, IBANs by their country's length and the mod-97 checksum, and
numbers without a phone-like shape by ``phonenumbers`` (Google's libphonenumber) for the regions in the
``redaction_phone_regions`` setting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import phonenumbers

from core import hookimpl
from core.settings import Settings
from core.types import ItemDraft

DEFAULT_PHONE_REGIONS = ("US", "GB", "DE", "FR")
# The IBAN's length in each country that issues them (SWIFT's IBAN registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
    "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}

# Local part: RFC 5322 atext and dots, any script; domain: labels of any script, a TLD of letters or punycode.
_LOCAL = r"[\w.!#$%&'*+/=?^`{|}~\-]+"
_LABEL = r"[^\W_](?:[\w\-]{0,61}[^\W_])?"
_TLD = r"(?:[^\W\d_]{2,}|xn--[a-z0-9\-]{2,59})"
# Matches start where a local part starts (the lookbehind), so a long run without "@" is read once, not per letter.
EMAIL = re.compile(rf"(?<![\w.!#$%&'*+/=?^`{{|}}~\-]){_LOCAL}@(?:{_LABEL}\.)+{_TLD}(?![\w\-])", re.IGNORECASE)
# Spelled out to dodge filters: "john at example dot com", "john(at)example(dot)com", "john [at] example.com".
_OPEN, _CLOSE = r"\s*[(\[{<]\s*", r"\s*[)\]}>]\s*"
_WORD_LABEL = r"[^\W\d_][\w\-]*"
SPELLED_EMAIL = re.compile(rf"(?<![\w.@])[\w.+\-]+\s+at\s+{_WORD_LABEL}(?:\s+dot\s+{_WORD_LABEL})+", re.IGNORECASE)
BRACKETED_EMAIL = re.compile(rf"(?<![\w.@])[\w.+\-]+{_OPEN}at{_CLOSE}{_WORD_LABEL}"
                             rf"(?:(?:{_OPEN}dot{_CLOSE}|\s+dot\s+|\.){_WORD_LABEL})+", re.IGNORECASE)
NON_DIGIT = re.compile(r"\D")
IBAN_START = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}")
# Digits in groups split by spaces, dashes or dots (a card is 13 to 19 digits).
CARD_CANDIDATE = re.compile(r"(?<!\d)\d+(?:(?:\s?[.\-]\s?|\s{1,2})\d+)*")
# A phone-like run for phonenumbers to judge: an optional + or 00, digits with the punctuation people use.
PHONE_CANDIDATE = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d[\d \-.()/]{5,20}\d(?![\d])")
# Dates, which phonenumbers takes for numbers in some regions (2024-03-01 is a valid German number).
DATE = re.compile(r"\d{4}[\-./]\d{1,2}[\-./]\d{1,2}|\d{1,2}[\-./]\d{1,2}[\-./]\d{2,4}")
COMPACT_DATE = re.compile(r"(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])")
# Shapes that are phone numbers whatever phonenumbers says (it refuses fictional 555 numbers, for one).
PHONE_PATTERNS = (
    re.compile(r"(?<![\w+])(?:\+|00)[1-9][\d \-().]{5,18}\d(?!\d)"),  # international
    re.compile(r"(?<![\w])\(?\d{3}\)?[ .\-]?\d{3}[ .\-]\d{4}(?!\d)"),  # North American
    re.compile(r"(?<![\w])0\d{2,4}[ .\-]?\d{3,4}[ .\-]?\d{3,4}(?!\d)"),  # national, trunk 0
)


def redact(text: str, phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> str:
    """The text with personal data replaced by [EMAIL], [IBAN], [CARD] and [PHONE]."""
    text = EMAIL.sub("[EMAIL]", text)
    text = BRACKETED_EMAIL.sub("[EMAIL]", text)
    text = SPELLED_EMAIL.sub("[EMAIL]", text)
    text = _redact_ibans(text)
    text = CARD_CANDIDATE.sub(lambda match: _best_run(match.group(0), _is_card, "[CARD]", (13, 19)), text)
    phone_check = _PhoneCheck(tuple(phone_regions))
    text = PHONE_CANDIDATE.sub(lambda match: _best_run(match.group(0), phone_check, "[PHONE]", (7, 15)), text)
    for pattern in PHONE_PATTERNS:
        text = pattern.sub("[PHONE]", text)
    return text


def redact_value(value: Any, phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> Any:
    """Strings redacted wherever they sit in lists and mappings (keys too); other values as they are."""
    if isinstance(value, str):
        return redact(value, phone_regions)
    if isinstance(value, dict):
        return {redact_value(key, phone_regions): redact_value(item, phone_regions) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item, phone_regions) for item in value]
    return value


def _redact_ibans(text: str) -> str:
    pieces: list[str] = []
    position = 0
    for match in IBAN_START.finditer(text):
        if match.start() < position:
            continue
        end = _iban_end(text, match.start())
        if end is not None:
            pieces += [text[position:match.start()], "[IBAN]"]
            position = end
    return "".join(pieces) + text[position:]


def _iban_end(text: str, start: int) -> int | None:
    """Where the IBAN starting at ``start`` ends (any case, single spaces or dashes between characters), if
    its country's length and its mod-97 checksum say it is one."""
    length = IBAN_LENGTHS.get(text[start:start + 2].upper())
    if length is None:
        return None
    compact: list[str] = []
    index = start
    while index < len(text) and len(compact) < length:
        char = text[index]
        if char.isascii() and char.isalnum():
            compact.append(char.upper())
        elif not (char in " -" and text[index - 1] not in " -" and text[index + 1:index + 2].isalnum()):
            break
        index += 1
    if len(compact) < length:
        return None
    iban = "".join(compact)
    rearranged = iban[4:] + iban[:4]
    return index if int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1 else None


def _best_run(found: str, accept: Callable[[str], bool], label: str, digits: tuple[int, int]) -> str:
    """``found`` with runs of whole digit groups that ``accept`` takes replaced by ``label``, leftmost longest.

    A greedy match may take in a neighbouring number ("4111 1111 1111 1111 2 times") or hold two, so the
    runs of its groups with a plausible number of digits are tried: linear in the groups, as each start
    tries at most ``digits[1]`` of them.
    """
    groups = [(group.start(), group.end()) for group in re.finditer(r"\d+", found)]
    # A "+" or "(" before the first digits belongs to a run that starts there.
    lead = 0 if groups and found[:groups[0][0]].strip(" ") else None
    pieces: list[str] = []
    copied = 0
    first = 0
    while first < len(groups):
        last = _longest_accepted(found, groups, first, accept, digits, lead)
        if last is None:
            first += 1
            continue
        begin = lead if first == 0 and lead is not None else groups[first][0]
        pieces += [found[copied:begin], label]
        copied, first = groups[last][1], last + 1
    return "".join(pieces) + found[copied:]


def _longest_accepted(found: str, groups: list[tuple[int, int]], first: int, accept: Callable[[str], bool],
                      digits: tuple[int, int], lead: int | None) -> int | None:
    begin = lead if first == 0 and lead is not None else groups[first][0]
    ends: list[int] = []
    count = 0
    for last in range(first, len(groups)):
        count += groups[last][1] - groups[last][0]
        if count > digits[1]:
            break
        if count >= digits[0]:
            ends.append(last)
    return next((last for last in reversed(ends) if accept(found[begin:groups[last][1]])), None)


def _luhn(digits: str) -> bool:
    doubled = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # each digit doubled, its digits summed
    return (sum(map(int, digits[-1::-2])) + sum(doubled[int(char)] for char in digits[-2::-2])) % 10 == 0


def _is_card(candidate: str) -> bool:
    digits = NON_DIGIT.sub("", candidate)
    return 13 <= len(digits) <= 19 and len(set(digits)) > 1 and _luhn(digits)


class _PhoneCheck:
    """Whether a run is a phone number, by ``phonenumbers`` for each region, up to a budget per text: a text
    made of hundreds of number-like runs would take seconds to check, so past the budget every run of
    7 to 15 digits that is not a date counts as a number (a false positive costs a word, never a leak)."""

    BUDGET = 200

    def __init__(self, regions: tuple[str, ...]) -> None:
        self.regions = regions
        self.checks_left = self.BUDGET

    def __call__(self, candidate: str) -> bool:
        if DATE.search(candidate) or COMPACT_DATE.fullmatch(candidate):
            return False
        if self.checks_left <= 0:
            return True
        self.checks_left -= 1
        return _is_phone(candidate, self.regions)


@lru_cache(maxsize=4096)
def _is_phone(candidate: str, regions: tuple[str, ...]) -> bool:
    for region in regions:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False


# Metadata keys whose values are references channels make (docs/plugins.md: metadata conventions).
REFERENCE_KEYS = frozenset({"thread"})
REFERENCE = re.compile(r"[A-Za-z0-9_.:#/-]{1,200}")


def phone_regions(settings: Settings | None) -> tuple[str, ...]:
    configured = getattr(settings, "redaction_phone_regions", None)
    if not configured:
        return DEFAULT_PHONE_REGIONS
    return tuple(region.strip().upper() for region in str(configured).split(",") if region.strip())


def redact_url(url: str, phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> str:
    """The url with each path segment redacted on its own: ids in a path ("/2023-02-08/46582/3") are not
    one phone number, while an address or a number inside a segment or the query still goes."""
    return "/".join(redact(segment, phone_regions) for segment in url.split("/"))


def is_reference(key: str, value: Any) -> bool:
    """A thread reference a channel made from its source's ids ("conversation-215470347394450"): kept as
    it is, since 1 long id in 10 passes the card check and would become "[CARD]", and two threads one.
    Anything with a space or an "@" in it is redacted like the rest."""
    return key in REFERENCE_KEYS and isinstance(value, str) and REFERENCE.fullmatch(value) is not None


@hookimpl
def redact_item(item: ItemDraft, settings: Settings) -> None:
    regions = phone_regions(settings)
    if item.url is not None:
        item.url = redact_url(item.url, regions)
    item.metadata = {redact_value(key, regions): value if is_reference(key, value) else redact_value(value, regions)
                     for key, value in item.metadata.items()}


@hookimpl
def enrich_item(item: ItemDraft, settings: Settings) -> None:
    # Built-ins are registered first, so pluggy calls this after other enrichments: a redacted text one of them
    # made is redacted too. The url and metadata are redact_item's: the core calls it after enrichment.
    regions = phone_regions(settings)
    item.redacted_text = redact(item.redacted_text if item.redacted_text is not None else item.text, regions)
