"""Built-in enrichment: is an item an idea, a complaint, a question or praise?

A small rule set that reads the text the way a triager would; a plugin can replace it by setting
``item.kind`` first (this one only fills in a missing kind).
"""

from __future__ import annotations

import re

from core import hookimpl
from core.types import ItemDraft
from plugins.sentiment import sentiment_of

IDEA = re.compile(
    r"\b(would be (nice|great|good|helpful)|it'?d be (nice|great)|please add|could you add|can you add|"
    r"feature request|i wish|wish (there|you|i)|suggest|suggestion|should (add|allow|support|have)|"
    r"would love|add (an? )?option|allow (me|us|users) to)\b",
    re.IGNORECASE,
)
QUESTION_START = re.compile(
    r"^\s*(how|what|why|when|where|which|who|can|could|is|are|do|does|did|will|would|should|may|am)\b",
    re.IGNORECASE,
)
COMPLAINT = re.compile(
    r"\b(not working|doesn'?t work|does not work|broken|still (not|haven'?t|hasn'?t)|haven'?t (got|received)|"
    r"hasn'?t (arrived|come)|never (arrived|received|got)|charged (twice|again)|declined|failed|error|"
    r"wrong|refund|frustrat\w*|annoy\w*|terrible|awful|worst|crash\w*|bug|can'?t|cannot|unable)\b",
    re.IGNORECASE,
)
PRAISE = re.compile(r"\b(love|great|awesome|amazing|excellent|thank(s| you)|well done|fantastic)\b",
                    re.IGNORECASE)


def classify(text: str, sentiment: float | None = None) -> str:
    if IDEA.search(text):
        return "idea"
    if sentiment is None:
        sentiment = sentiment_of(text)
    if PRAISE.search(text) and sentiment >= 0.5 and not COMPLAINT.search(text):
        return "praise"
    if COMPLAINT.search(text) or sentiment <= -0.3:
        return "complaint"
    if text.rstrip().endswith("?") or QUESTION_START.match(text):
        return "question"
    return "praise" if sentiment >= 0.5 else "complaint"


# The rules read only this prefix: what a text is (an idea, a question) shows in its opening, and a bound
# keeps the regular expressions' work the same for every text, however long.
KIND_PREFIX_CHARS = 2_000


@hookimpl(trylast=True)  # the fallback: plugins/sentiment_model.py runs first and fills both
def enrich_item(item: ItemDraft) -> None:
    if item.kind is None:
        if item.sentiment is None:  # computed once: the sentiment plugin keeps a score already there
            item.sentiment = sentiment_of(item.text)
        item.kind = classify(item.text[:KIND_PREFIX_CHARS], item.sentiment)
