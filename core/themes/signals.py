"""Signals that rules and spike alerts test, computed from item timestamps and metadata.

The spike score compares a theme's items in the last window with what its own recent past predicts:
a Poisson z-score, so a theme that always gets ten items an hour is not a spike at ten, and a quiet
theme suddenly getting eight is.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.clock import aware
from core.models import FeedbackItem, ThemeMembership

SPIKE_WINDOW = timedelta(hours=1)
BASELINE_WINDOW = timedelta(days=7)
# Metadata values longer than this are free text, not categories a rule could test.
MAX_CATEGORY_LENGTH = 64


@dataclass(frozen=True)
class ThemeSignals:
    recent: int
    expected: float
    trend: float
    anomaly_score: float
    metadata_counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_fields(self) -> dict[str, Any]:
        return {"trend": self.trend, "anomaly_score": self.anomaly_score, "metadata_counts": self.metadata_counts}


def spike_score(recent: int, expected: float) -> float:
    """How many standard deviations above its expected count the recent window is (Poisson)."""
    return (recent - expected) / math.sqrt(expected + 1.0)


def spike_scores(session: Session, at_least: int, now: datetime | None = None, window: timedelta = SPIKE_WINDOW,
                 baseline: timedelta = BASELINE_WINDOW) -> dict[int, tuple[int, float]]:
    """{theme id: (items in the last window, spike score)} for the themes with at least ``at_least`` items in
    it, counted in SQL: the last window's items first (few, by the index on their dates), then the baseline
    of those themes only. What a spike check needs before it reads any theme's items (``theme_signals``)."""
    now = now or datetime.now(UTC)
    start = now - window
    recent = {int(theme_id): int(count) for theme_id, count in session.execute(
        select(ThemeMembership.theme_id, func.count()).join(FeedbackItem, FeedbackItem.id == ThemeMembership.item_id)
        .where(FeedbackItem.created_at >= start).group_by(ThemeMembership.theme_id)) if count >= at_least}
    if not recent:
        return {}
    earlier = {int(theme_id): int(count) for theme_id, count in session.execute(
        select(ThemeMembership.theme_id, func.count()).join(FeedbackItem, FeedbackItem.id == ThemeMembership.item_id)
        .where(ThemeMembership.theme_id.in_(sorted(recent)), FeedbackItem.created_at >= start - baseline,
               FeedbackItem.created_at < start).group_by(ThemeMembership.theme_id))}
    return {theme_id: (count, spike_score(count, earlier.get(theme_id, 0) * (window / baseline)))
            for theme_id, count in recent.items()}


def theme_signals(session: Session, theme_ids: Sequence[int], settings: object = None,
                  now: datetime | None = None, window: timedelta = SPIKE_WINDOW,
                  baseline: timedelta = BASELINE_WINDOW) -> dict[int, ThemeSignals]:
    if not theme_ids:
        return {}
    now = now or datetime.now(UTC)
    rows = session.execute(
        select(ThemeMembership.theme_id, FeedbackItem.created_at, FeedbackItem.metadata_json,
               FeedbackItem.customer_tier)
        .join(FeedbackItem, FeedbackItem.id == ThemeMembership.item_id)
        .where(ThemeMembership.theme_id.in_(list(theme_ids)))
    ).all()
    recent: Counter[int] = Counter()
    earlier: Counter[int] = Counter()
    metadata: dict[int, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for theme_id, created_at, item_metadata, customer_tier in rows:
        moment = aware(created_at)
        assert moment is not None
        if moment >= now - window:
            recent[theme_id] += 1
        elif moment >= now - window - baseline:
            earlier[theme_id] += 1
        for key, value in (item_metadata or {}).items():
            if isinstance(value, str | int | float | bool) and len(str(value)) <= MAX_CATEGORY_LENGTH:
                metadata[theme_id][str(key)][str(value)] += 1
        if customer_tier:  # intake's impact lookup fills this column from a payload field or a file
            metadata[theme_id]["customer_tier"][customer_tier] += 1
    signals = {}
    for theme_id in theme_ids:
        expected = earlier[theme_id] * (window / baseline)
        signals[theme_id] = ThemeSignals(
            recent=recent[theme_id], expected=expected,
            trend=(recent[theme_id] + 1.0) / (expected + 1.0),
            anomaly_score=spike_score(recent[theme_id], expected),
            metadata_counts={key: dict(values) for key, values in metadata[theme_id].items()},
        )
    return signals
