"""Built-in enrichment: redact e-mail addresses, phone numbers, payment card numbers and IBANs.

The redacted text is what is shown in the dashboard and sent to trackers; the original stays in the
database only. We redact generously: a false positive costs a word, a false negative leaks data.
"""

from __future__ import annotations

import re

from core import hookimpl
from core.types import ItemDraft

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
# IBAN: printed uppercase in groups of four, or typed in one run (any case).
IBAN_GROUPED = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
IBAN_RUN = re.compile(r"\b[A-Za-z]{2}\d{2}[A-Za-z0-9]{11,30}\b")
# Any run of 13-19 digits, optionally split by spaces or dashes: cards and account numbers alike.
CARD = re.compile(r"(?<![\d])(?:\d[ \-]?){12,18}\d(?![\d])")
PHONE_PATTERNS = (
    re.compile(r"(?<![\w+])(?:\+|00)[1-9][\d \-().]{5,18}\d(?!\d)"),  # international
    re.compile(r"(?<![\w])\(?\d{3}\)?[ .\-]?\d{3}[ .\-]\d{4}(?!\d)"),  # North American
    re.compile(r"(?<![\w])0\d{2,4}[ .\-]?\d{3,4}[ .\-]?\d{3,4}(?!\d)"),  # national, trunk 0
)


def redact(text: str) -> str:
    """The text with personal data replaced by [EMAIL], [IBAN], [CARD] and [PHONE]."""
    text = EMAIL.sub("[EMAIL]", text)
    text = IBAN_GROUPED.sub("[IBAN]", text)
    text = IBAN_RUN.sub(_iban_if_plausible, text)
    text = CARD.sub("[CARD]", text)
    for pattern in PHONE_PATTERNS:
        text = pattern.sub("[PHONE]", text)
    return text


def _iban_if_plausible(match: re.Match[str]) -> str:
    # A lower-case run such as "ab12thisisaword" must also contain digits after the check digits.
    rest = match.group(0)[4:]
    return "[IBAN]" if sum(ch.isdigit() for ch in rest) >= 4 else match.group(0)


@hookimpl
def enrich_item(item: ItemDraft) -> None:
    item.redacted_text = redact(item.redacted_text if item.redacted_text is not None else item.text)
