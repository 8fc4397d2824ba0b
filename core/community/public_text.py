"""Texts a person types for the public page, made safe to publish: plain text, redacted, no author names.

- HTML is refused, not stripped (the person sees what went wrong; the page escapes everything anyway):
  the standard library's HTML parser says whether the text holds a tag, comment or declaration.
- Invisible format characters (zero-width spaces, bidi controls) and control characters are dropped, so a
  ``jane\u200b@example.com`` cannot slip past redaction and still read as an address.
- Redaction is the one every item gets: the ``enrich_item`` hook (plugins/redaction.py) on a draft that
  holds the text. With no plugin redacting, nothing is published (fail closed).
- A run of one to three words that is the name of an author of stored feedback (its keyed pseudonym
  matches one stored), or a stored pseudonym itself, becomes ``[AUTHOR]``; before redaction, which could
  otherwise break up a pseudonym (hex that opens with digits reads as a phone number).
"""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import ConfigurationError, InvalidInput
from core.loop import FeedbackLoop
from core.models import FeedbackItem
from core.types import ItemDraft

AUTHOR_PLACEHOLDER = "[AUTHOR]"
MAX_NAME_WORDS = 3
PSEUDONYM_CHARS = 32  # core/intake/pseudonyms.py: Pseudonyms.author
LOOKUP_CHUNK = 500
WORD = re.compile(r"\S+")
# What people put around a name: "@jane", "(Jane Doe)", "jane_doe," ...
NAME_PUNCTUATION = "@\"'“”‘’()[]{}<>.,;:!?"
KEPT_CONTROLS = frozenset("\n\t")


class _MarkupFinder(HTMLParser):
    """Notes whether the parser met any markup; text and character references are not markup."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found = self.found or f"<{tag}>"

    def handle_endtag(self, tag: str) -> None:
        self.found = self.found or f"</{tag}>"

    def handle_comment(self, data: str) -> None:
        self.found = self.found or "<!-- -->"

    def handle_decl(self, decl: str) -> None:
        self.found = self.found or "<!...>"

    def handle_pi(self, data: str) -> None:
        self.found = self.found or "<?...>"


def refuse_markup(text: str, field: str) -> None:
    """InvalidInput when ``text`` holds HTML markup."""
    finder = _MarkupFinder()
    finder.feed(text)
    finder.close()
    if finder.found is not None:
        raise InvalidInput(f"{field}: write plain text; HTML such as {finder.found} is not published")


def plain(text: str) -> str:
    """Unix line ends, no control or invisible format characters, no blanks at either end."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(char for char in text if char in KEPT_CONTROLS
                   or unicodedata.category(char) not in ("Cc", "Cf")).strip()


def redact_text(loop: FeedbackLoop, text: str) -> str:
    """The text as the installation's redaction leaves an item's text (the ``enrich_item`` hook)."""
    draft = ItemDraft(text=text, channel="public-page")
    loop.pm.hook.enrich_item(item=draft, settings=loop.settings)
    if draft.redacted_text is None:
        raise ConfigurationError("no plugin redacts texts (plugins.redaction is not loaded): nothing is published")
    return draft.redacted_text


def _name_candidates(text: str) -> dict[tuple[int, int], str]:
    """Runs of up to three words by their span, without the punctuation people put around a name."""
    words = [(match.start(), match.end()) for match in WORD.finditer(text)]
    candidates: dict[tuple[int, int], str] = {}
    for first in range(len(words)):
        for last in range(first, min(first + MAX_NAME_WORDS, len(words))):
            raw = text[words[first][0]:words[last][1]]
            start = words[first][0] + len(raw) - len(raw.lstrip(NAME_PUNCTUATION))
            end = words[last][1] - (len(raw) - len(raw.rstrip(NAME_PUNCTUATION)))
            if start < end:
                candidates[(start, end)] = text[start:end]
    return candidates


def _known(session: Session, values: set[str]) -> set[str]:
    ordered = sorted(values)
    found: set[str] = set()
    for offset in range(0, len(ordered), LOOKUP_CHUNK):
        chunk = ordered[offset:offset + LOOKUP_CHUNK]
        found.update(value for value in session.scalars(
            select(FeedbackItem.author_pseudonym).where(FeedbackItem.author_pseudonym.in_(chunk)).distinct())
            if value is not None)
    return found


def hide_authors(loop: FeedbackLoop, session: Session, text: str) -> str:
    """``text`` with the names (and pseudonyms) of stored feedback's authors replaced by ``[AUTHOR]``."""
    keys: dict[tuple[int, int], set[str]] = {}
    for span, spelling in _name_candidates(text).items():
        pseudonym = loop.pseudonyms.author(spelling)
        keys[span] = {pseudonym} if pseudonym else set()
        if len(spelling) == PSEUDONYM_CHARS:  # a pseudonym copied from somewhere
            keys[span].add(spelling.lower())
    known = _known(session, set().union(*keys.values()) if keys else set())
    spans = sorted((span for span, values in keys.items() if values & known), key=lambda s: (s[0], -s[1]))
    pieces: list[str] = []
    copied = 0
    for start, end in spans:  # leftmost first, the longest at each start; overlaps go with the first
        if start >= copied:
            pieces += [text[copied:start], AUTHOR_PLACEHOLDER]
            copied = end
    return "".join(pieces) + text[copied:]


def public_text(loop: FeedbackLoop, session: Session, text: str, field: str, max_chars: int) -> str:
    """A typed text made publishable, or InvalidInput saying what is wrong with it."""
    cleaned = plain(text)
    if not cleaned:
        raise InvalidInput(f"{field}: write something")
    if len(cleaned) > max_chars:
        raise InvalidInput(f"{field}: at most {max_chars} characters (this has {len(cleaned)})")
    refuse_markup(cleaned, field)
    # Authors first: a pseudonym's hex can open with a digit run that a phone redactor would take, which
    # leaves a pseudonym no longer whole and so no longer recognised.
    return redact_text(loop, hide_authors(loop, session, cleaned))
