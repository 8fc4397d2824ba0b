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


def sentiment_of(text: str) -> float:
    return float(_analyzer().polarity_scores(text)["compound"])


@hookimpl
def enrich_item(item: ItemDraft) -> None:
    if item.sentiment is None:
        item.sentiment = sentiment_of(item.text)
