"""Areas in the database: written by re-clustering with ids that carry over, moved by people, listed with figures.

An area keeps its id when the items of its themes mostly stay together (the rule themes follow,
clustering/identity.py). A theme a person moved into an area stays there (``Theme.area_locked``); the
clustering's grouping only places the others. An area that is left without themes is kept (its id is
never reused) but not listed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clustering.identity import match_to_predecessors
from clustering.pipeline import ThemeResult
from core.errors import NotFound
from core.models import Area, FeedbackItem, Theme, ThemeMembership
from core.themes.signals import theme_signals
from core.types import INACTIVE_STATUSES


@dataclass(frozen=True)
class AreaView:
    """An area with its figures: volume and share of voice summed over its active themes; trend as a
    theme's (recent items against the baseline's expectation), over the area's items together."""

    id: int
    label: str
    keywords: list[str]
    themes: int
    volume: int
    share_of_voice: float
    trend: float


def get_area(session: Session, area_id: int) -> Area:
    """The area with this id; ``NotFound`` when there is none."""
    area = session.get(Area, area_id)
    if area is None:
        raise NotFound(f"no area with id {area_id}")
    return area


def write_areas(session: Session, result: ThemeResult, theme_of_label: dict[int, int]) -> int:
    """Give every theme of this clustering its area: a person's choice where they made one, else the
    clustering's group, whose area id carries over from the area most of its items were in before. The
    number of areas these themes are in."""
    themes = {theme.id: theme for theme in session.scalars(select(Theme).where(Theme.id.in_(
        set(theme_of_label.values()))))}
    members = _theme_members(session)
    old_members: dict[int, set[int]] = defaultdict(set)
    for theme in session.scalars(select(Theme).where(Theme.area_id.is_not(None))):
        assert theme.area_id is not None
        old_members[theme.area_id] |= members.get(theme.id, set())
    # Largest cluster first: when a person's merge sends two clusters to one theme, the larger places it.
    group_of_theme: dict[int, int] = {}
    for label in sorted(theme_of_label, key=lambda label: (-int((result.labels == label).sum()), label)):
        if label in result.area_of_theme:
            group_of_theme.setdefault(theme_of_label[label], result.area_of_theme[label])
    new_members: dict[int, set[int]] = defaultdict(set)
    for theme_id, group in group_of_theme.items():
        if not themes[theme_id].area_locked:
            new_members[group] |= members.get(theme_id, set())
    area_of_group = match_to_predecessors(new_members, old_members)
    for group in sorted(set(group_of_theme.values())):
        info = result.areas.get(group)  # the labeller names areas by their group number
        area = session.get(Area, area_of_group[group]) if group in area_of_group else None
        if area is None:
            area = Area(label=info.title if info else "Untitled area", keywords=[])
            session.add(area)
            session.flush()
        if info is not None:
            area.keywords = info.keywords
            if not area.label_locked:
                area.label = info.title
        area_of_group[group] = area.id
    for theme_id, group in group_of_theme.items():
        theme = themes[theme_id]
        if not (theme.area_locked and theme.area_id is not None):
            theme.area_id = area_of_group[group]
    session.flush()
    return len({themes[theme_id].area_id for theme_id in group_of_theme} - {None})


def _theme_members(session: Session) -> dict[int, set[int]]:
    members: dict[int, set[int]] = defaultdict(set)
    for item_id, theme_id in session.execute(select(ThemeMembership.item_id, ThemeMembership.theme_id)):
        members[theme_id].add(item_id)
    return members


def area_views(session: Session) -> list[AreaView]:
    """Every area that holds an active theme, largest first."""
    total = int(session.scalar(select(func.count()).select_from(FeedbackItem)) or 0)
    active = select(Theme.id, Theme.area_id).where(Theme.status.not_in(INACTIVE_STATUSES),
                                                   Theme.area_id.is_not(None))
    themes_of: dict[int, list[int]] = defaultdict(list)
    for theme_id, area_id in session.execute(active):
        if area_id is not None:
            themes_of[area_id].append(theme_id)
    volume = {theme_id: int(count) for theme_id, count in session.execute(
        select(ThemeMembership.theme_id, func.count()).group_by(ThemeMembership.theme_id))}
    signals = theme_signals(session, sorted(t for ids in themes_of.values() for t in ids))
    views = []
    for area in session.scalars(select(Area).where(Area.id.in_(list(themes_of)))):
        ids = themes_of[area.id]
        area_volume = sum(int(volume.get(t, 0)) for t in ids)
        recent = sum(signals[t].recent for t in ids)
        expected = sum(signals[t].expected for t in ids)
        views.append(AreaView(id=area.id, label=area.label, keywords=list(area.keywords or []), themes=len(ids),
                              volume=area_volume, share_of_voice=area_volume / total if total else 0.0,
                              trend=(recent + 1.0) / (expected + 1.0)))
    return sorted(views, key=lambda view: (-view.volume, view.id))
