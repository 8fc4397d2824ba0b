"""Built-in enrichment: VADER sentiment, a compound score in [-1, 1]."""

from __future__ import annotations

from functools import cache
from typing import Any

from core import hookimpl
from core.types import ItemDraft


@cache
def _analyzer() -> Any:
    # Loading the lexicon takes a moment: do it once, on first use, not at import.
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


# VADER's cost grows faster than the text (measured: 3 ms for 1,000 characters, 14 ms for 2,000, 1.1 s for
# 20,000), and the opening of a piece of feedback carries its tone: score only this prefix, so a long
# text costs no more than a short one. Redaction still reads the whole text.
SENTIMENT_PREFIX_CHARS = 1_000


def sentiment_of(text: str) -> float:
    return float(_analyzer().polarity_scores(text[:SENTIMENT_PREFIX_CHARS])["compound"])


@hookimpl(trylast=True)  # the fallback: plugins/sentiment_model.py runs first and fills both
def enrich_item(item: ItemDraft) -> None:
    if item.sentiment is None:
        item.sentiment = sentiment_of(item.text)
