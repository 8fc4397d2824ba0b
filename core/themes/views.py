"""Themes as plugins, pages and tickets see them: metrics per theme, and the theme a merged one became."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import NotFound
from core.models import FeedbackItem, Theme, ThemeMembership
from core.types import INACTIVE_STATUSES, ThemeView


def get_theme(session: Session, theme_id: int) -> Theme:
    """The theme with this id; ``NotFound`` when there is none."""
    theme = session.get(Theme, theme_id)
    if theme is None:
        raise NotFound(f"no theme with id {theme_id}")
    return theme


def final_theme(session: Session, theme_id: int) -> Theme:
    """The theme that now stands for ``theme_id``: itself, or where a person merged it."""
    theme = session.get(Theme, theme_id)
    assert theme is not None
    seen: set[int] = set()
    while theme.merged_into_id is not None and theme.id not in seen:
        seen.add(theme.id)
        merged = session.get(Theme, theme.merged_into_id)
        assert merged is not None
        theme = merged
    return theme


def theme_views(session: Session, include_inactive: bool = False) -> list[ThemeView]:
    """Every theme with its metrics, largest first."""
    query = select(Theme)
    if not include_inactive:
        query = query.where(Theme.status.not_in(INACTIVE_STATUSES))
    total = int(session.scalar(select(func.count()).select_from(FeedbackItem)) or 0)
    stats: dict[int, list[tuple[float | None, str | None, str]]] = defaultdict(list)
    for theme_id, sentiment, kind, channel in session.execute(
        select(ThemeMembership.theme_id, FeedbackItem.sentiment, FeedbackItem.kind, FeedbackItem.channel)
        .join(FeedbackItem, FeedbackItem.id == ThemeMembership.item_id)
    ):
        stats[theme_id].append((sentiment, kind, channel))
    views = [_view(theme, stats.get(theme.id, []), total) for theme in session.scalars(query)]
    return sorted(views, key=lambda view: (-view.volume, view.id))


def theme_view(session: Session, theme: Theme) -> ThemeView:
    """One theme with its metrics, counted in the database (a theme page of a 10,000-item theme would
    otherwise turn every item into a Python row)."""
    total = int(session.scalar(select(func.count()).select_from(FeedbackItem)) or 0)
    members = select(ThemeMembership.item_id).where(ThemeMembership.theme_id == theme.id)
    # One pass over the theme's items, grouped by (kind, channel): a few dozen rows at most.
    kinds: Counter[str] = Counter()
    channels: Counter[str] = Counter()
    volume, sentiment_sum, rated = 0, 0.0, 0
    for kind, channel, count, summed, with_sentiment in session.execute(
            select(FeedbackItem.kind, FeedbackItem.channel, func.count(), func.sum(FeedbackItem.sentiment),
                   func.count(FeedbackItem.sentiment))
            .where(FeedbackItem.id.in_(members)).group_by(FeedbackItem.kind, FeedbackItem.channel)):
        volume += int(count)
        sentiment_sum += float(summed or 0.0)
        rated += int(with_sentiment)
        channels[channel] += int(count)
        if kind:
            kinds[kind] += int(count)
    mean = sentiment_sum / rated if rated else None
    return ThemeView(
        id=theme.id, label=theme.label, keywords=list(theme.keywords or []), status=theme.status,
        volume=volume, share_of_voice=volume / total if total else 0.0,
        mean_sentiment=mean if mean is not None else 0.0, kinds=dict(kinds), channels=dict(channels),
        quotes=list(theme.quotes or []), owner=theme.owner.name if theme.owner is not None else None,
        area_id=theme.area_id, area_label=theme.area.label if theme.area is not None else None,
    )


def _view(theme: Theme, rows: list[tuple[float | None, str | None, str]], total: int) -> ThemeView:
    sentiments = [s for s, _, _ in rows if s is not None]
    return ThemeView(
        id=theme.id,
        label=theme.label,
        keywords=list(theme.keywords or []),
        status=theme.status,
        volume=len(rows),
        share_of_voice=len(rows) / total if total else 0.0,
        mean_sentiment=float(np.mean(sentiments)) if sentiments else 0.0,
        kinds=dict(Counter(k for _, k, _ in rows if k)),
        channels=dict(Counter(c for _, _, c in rows)),
        quotes=list(theme.quotes or []),
        owner=theme.owner.name if theme.owner is not None else None,
        area_id=theme.area_id,
        area_label=theme.area.label if theme.area is not None else None,
    )
