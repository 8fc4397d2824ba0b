"""Themes as plugins, pages and tickets see them: metrics per theme, and the theme a merged one became."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

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
    """Every theme with its metrics, largest first; counted in the database, one row per theme, kind and
    channel (at a million items, a Python row per membership would cost seconds and a gigabyte)."""
    query = select(Theme)
    if not include_inactive:
        query = query.where(Theme.status.not_in(INACTIVE_STATUSES))
    total = int(session.scalar(select(func.count()).select_from(FeedbackItem)) or 0)
    tallies: dict[int, Tally] = defaultdict(Tally)
    for theme_id, kind, channel, count, summed, rated in session.execute(
            select(ThemeMembership.theme_id, *_TALLIED).join(FeedbackItem, FeedbackItem.id == ThemeMembership.item_id)
            .group_by(ThemeMembership.theme_id, FeedbackItem.kind, FeedbackItem.channel)):
        tallies[theme_id].add(kind, channel, count, summed, rated)
    views = [tallies[theme.id].view(theme, total) for theme in session.scalars(query)]
    return sorted(views, key=lambda view: (-view.volume, view.id))


def theme_view(session: Session, theme: Theme) -> ThemeView:
    """One theme with its metrics, counted in the database (a theme page of a 10,000-item theme would
    otherwise turn every item into a Python row)."""
    total = int(session.scalar(select(func.count()).select_from(FeedbackItem)) or 0)
    members = select(ThemeMembership.item_id).where(ThemeMembership.theme_id == theme.id)
    tally = Tally()
    # One pass over the theme's items, grouped by (kind, channel): a few dozen rows at most.
    for kind, channel, count, summed, rated in session.execute(
            select(*_TALLIED).where(FeedbackItem.id.in_(members)).group_by(FeedbackItem.kind, FeedbackItem.channel)):
        tally.add(kind, channel, count, summed, rated)
    return tally.view(theme, total)


_TALLIED = (FeedbackItem.kind, FeedbackItem.channel, func.count(), func.sum(FeedbackItem.sentiment),
            func.count(FeedbackItem.sentiment))


@dataclass
class Tally:
    """A theme's items counted by kind and channel, with the sum of their sentiments."""

    volume: int = 0
    sentiment_sum: float = 0.0
    rated: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    channels: Counter[str] = field(default_factory=Counter)

    def add(self, kind: str | None, channel: str, count: int, summed: float | None, rated: int) -> None:
        self.volume += int(count)
        self.sentiment_sum += float(summed or 0.0)
        self.rated += int(rated)
        self.channels[channel] += int(count)
        if kind:
            self.kinds[kind] += int(count)

    def view(self, theme: Theme, total: int) -> ThemeView:
        return ThemeView(
            id=theme.id, label=theme.label, keywords=list(theme.keywords or []), status=theme.status,
            volume=self.volume, share_of_voice=self.volume / total if total else 0.0,
            mean_sentiment=self.sentiment_sum / self.rated if self.rated else 0.0, kinds=dict(self.kinds),
            channels=dict(self.channels), quotes=list(theme.quotes or []),
            owner=theme.owner.name if theme.owner is not None else None,
            area_id=theme.area_id, area_label=theme.area.label if theme.area is not None else None,
        )
