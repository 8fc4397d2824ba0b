"""The themes overview: every theme ranked by what needs a person's attention, from SQL aggregates.

Aggregate queries count each theme's items per time bucket (GROUP BY theme, bucket) and in the windows
before, so the cost is a pass over the look-back period's items in the database, never one Python
object per item: volume, share of voice, sentiment, trend, sparkline, spike score and impact all come
from those sums. Channels are counted only for the themes on the page.

Time buckets: a window of length W (7d, 30d, 90d) is cut into ``SPARK_BUCKETS`` equal buckets (the
sparkline, oldest first); the ``TREND_PERIODS`` windows before it are the baseline. "all" counts every
item in the volume but takes its signals from the last 90 days, since all of time has no "before".
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, String, case, cast, func, literal_column, or_, select
from sqlalchemy.orm import QueryableAttribute, Session

from core.clock import aware, utcnow
from core.models import Area, FeedbackItem, Owner, Theme, ThemeMembership
from core.themes.overview_filter import (
    SIGNAL_PERIOD_FOR_ALL,
    SPARK_BUCKETS,
    STATUSES,
    TOP_CHANNELS,
    TREND_PERIODS,
    WINDOWS,
    OverviewFilter,
)
from core.themes.signals import spike_score
from core.types import INACTIVE_STATUSES, ThemeStatus


@dataclass
class OverviewRow:
    """One theme's line; filled in place while the page is built (attention, then the page's mix)."""

    id: int
    label: str
    status: str
    owner: str | None
    owner_id: int | None
    area_id: int | None  # the theme's area (core/themes/areas.py), None before areas are found
    area_label: str | None
    volume: int  # items in the window (of the channel and kind asked for)
    share_of_voice: float  # of all items in the window, themed or not
    mean_sentiment: float | None  # None when no item has a sentiment
    trend: float  # this window against the mean of the windows before it, +1 smoothed
    sparkline: list[int]  # items per bucket of the window, oldest first
    spike_score: float  # Poisson z of the newest bucket against the look-back's rate
    impact: float  # account value of the window's items
    tiered_items: int  # the window's items whose channel gave a customer tier
    attention: float = 0.0
    channels: list[tuple[str, int]] = field(default_factory=list)  # the top channels, largest first


@dataclass(frozen=True)
class OverviewPage:
    rows: list[OverviewRow]
    total: int  # themes matching the filter, over all pages
    page: int
    per_page: int
    # "status": themes per status under the other filters; "channel" / "kind": items of each, all time
    # (for the filter menus: read from their indexes, so they cost next to nothing).
    counts: dict[str, dict[str, int]]
    total_items: int  # items in the window (channel and kind applied): share of voice's denominator
    filter: OverviewFilter
    bucket_starts: list[datetime]  # where each sparkline bucket begins

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


@dataclass
class _Sums:
    buckets: list[int] = field(default_factory=lambda: [0] * SPARK_BUCKETS)
    before: int = 0  # the look-back windows before this one
    older: int = 0  # older still (only "all" counts these)
    sentiment_sum: float = 0.0
    sentiment_count: int = 0
    impact: float = 0.0
    tiered: int = 0

    def add(self, sentiment_sum: float | None, sentiment_count: int, value: float | None, tiered: int) -> None:
        self.sentiment_sum += float(sentiment_sum or 0.0)
        self.sentiment_count += int(sentiment_count)
        self.impact += float(value or 0.0)
        self.tiered += int(tiered)


def overview(session: Session, flt: OverviewFilter, now: datetime | None = None) -> OverviewPage:
    """One page of the overview for ``flt`` at ``now`` (default: the current time)."""
    now = (aware(now) or utcnow()).astimezone(UTC)  # naive: UTC, as stored
    period = WINDOWS[flt.window] or SIGNAL_PERIOD_FOR_ALL
    step = period / SPARK_BUCKETS
    window_start = now - period
    lookback_start = now - period * (TREND_PERIODS + 1)
    starts = [window_start + step * index for index in range(SPARK_BUCKETS)]

    in_window = _item_conditions(flt, None if flt.window == "all" else window_start)
    themes = _themes(session, flt)
    counts = {"channel": _all_time_counts(session, FeedbackItem.channel),
              "kind": _all_time_counts(session, FeedbackItem.kind)}
    conditions = _item_conditions(flt, None)
    if flt.search:  # only the matching themes' items are summed: a search usually leaves few themes
        conditions.append(ThemeMembership.theme_id.in_([theme[0] for theme in themes]))
    sums = _bucket_sums(session, conditions, starts, lookback_start, all_time=flt.window == "all")
    total_items = int(session.scalar(select(func.count()).select_from(FeedbackItem).where(*in_window)) or 0)

    nothing = _Sums()
    rows = [_row(theme, sums.get(theme[0], nothing), total_items, flt.window == "all") for theme in themes]
    if flt.channel is not None or flt.kind is not None or flt.origin is not None:
        rows = [row for row in rows if row.volume]  # a theme without such items is not about them
    counts["status"] = dict(sorted(Counter(row.status for row in rows).items()))
    # By default the themes that still matter: not archived, merged or ignored (noise and spam).
    wanted = set(flt.statuses) if flt.statuses else set(STATUSES) - set(INACTIVE_STATUSES) - {ThemeStatus.IGNORED}
    rows = [row for row in rows if row.status in wanted]
    _score_attention(rows)
    rows = _sorted(rows, flt.sort, flt.descending)
    first = (flt.page - 1) * flt.per_page
    page_rows = _with_mix(session, rows[first:first + flt.per_page], in_window, total_items)
    return OverviewPage(rows=page_rows, total=len(rows), page=flt.page, per_page=flt.per_page, counts=counts,
                        total_items=total_items, filter=flt, bucket_starts=starts)


def _item_conditions(flt: OverviewFilter, since: datetime | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(FeedbackItem.created_at >= since)
    if flt.channel is not None:
        conditions.append(FeedbackItem.channel == flt.channel)
    if flt.kind is not None:
        conditions.append(FeedbackItem.kind == flt.kind)
    if flt.origin is not None:
        conditions.append(internal_item() if flt.origin == "internal" else ~internal_item())
    return conditions


def internal_item() -> ColumnElement[bool]:
    """Items whose metadata says ``internal``: JSON true (SQLite's json_extract gives 1, PostgreSQL's ->> 'true').

    Compared as text, never cast to a boolean: a channel's own metadata may hold any string under that key,
    and PostgreSQL would refuse to cast it. Items without the key are external.
    """
    flag = func.coalesce(FeedbackItem.metadata_json["internal"].as_string(), "")
    return flag.in_(("true", "1"))


def _bucket_sums(session: Session, conditions: list[ColumnElement[bool]], starts: list[datetime],
                 lookback_start: datetime, all_time: bool) -> dict[int, _Sums]:
    """Per theme: items per bucket of the window with their sentiment and impact, and the items before.

    Two queries, not one CASE over the whole look-back: SQLite's GROUP BY sorts every row it groups, and
    rows carrying only a theme id (the windows before) sort at a third of the cost: 2x faster in all, and
    PostgreSQL's hash joins gain too (115 against 150 ms on 100,000 items).
    """
    created, window_start = FeedbackItem.created_at, starts[0]
    sums: dict[int, _Sums] = defaultdict(_Sums)
    bucket = case(*[(created >= start, index) for index, start in reversed(list(enumerate(starts)))], else_=0)
    # Grouped on the output column's name: PostgreSQL would not take two copies of the CASE, each with
    # its own bound parameters, for the same expression (and SQLite runs a subquery here 3x slower).
    window = (select(ThemeMembership.theme_id, bucket.label("overview_bucket"), func.count(),
                     func.sum(FeedbackItem.sentiment), func.count(FeedbackItem.sentiment),
                     func.sum(FeedbackItem.account_value), func.count(FeedbackItem.customer_tier))
              .select_from(FeedbackItem).join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)
              .where(created >= window_start, *conditions)
              .group_by(ThemeMembership.theme_id, literal_column("overview_bucket")))
    for theme_id, index, items, sentiment_sum, sentiment_count, value, tiered in session.execute(window):
        theme = sums[theme_id]
        theme.buckets[index] += items
        theme.add(sentiment_sum, sentiment_count, value, tiered)
    # Grouped on "theme_id + 0": on the theme index itself SQLite would walk all memberships in theme
    # order (to skip a sort) and fetch every item, when reading the period's items by date is 5x faster.
    theme_key = ThemeMembership.theme_id + literal_column("0")
    if not all_time:
        before = (select(theme_key, func.count()).select_from(FeedbackItem)
                  .join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)
                  .where(created >= lookback_start, created < window_start, *conditions).group_by(theme_key))
        for theme_id, items in session.execute(before):
            sums[theme_id].before += items
        return sums
    # "all": every older item counts in the volume, sentiment and impact too.
    older = (select(theme_key, func.count(), func.sum(case((created >= lookback_start, 1), else_=0)),
                    func.sum(FeedbackItem.sentiment), func.count(FeedbackItem.sentiment),
                    func.sum(FeedbackItem.account_value), func.count(FeedbackItem.customer_tier))
             .select_from(FeedbackItem).join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)
             .where(created < window_start, *conditions).group_by(theme_key))
    for theme_id, items, recent, sentiment_sum, sentiment_count, value, tiered in session.execute(older):
        theme = sums[theme_id]
        theme.before += int(recent)
        theme.older += items - int(recent)
        theme.add(sentiment_sum, sentiment_count, value, tiered)
    return sums


ThemeRow = tuple[int, str, str, int | None, str | None, int | None, str | None]


def _themes(session: Session, flt: OverviewFilter) -> list[ThemeRow]:
    """(id, label, status, owner id, owner, area id, area) of every theme the filter's theme conditions admit."""
    query = select(Theme.id, Theme.label, Theme.status, Theme.owner_id, Owner.name, Theme.area_id,
                   Area.label).outerjoin(Owner, Owner.id == Theme.owner_id).outerjoin(Area, Area.id == Theme.area_id)
    if flt.area is not None:
        query = query.where(Theme.area_id == flt.area)
    if flt.owner == "none":
        query = query.where(Theme.owner_id.is_(None))
    elif flt.owner is not None:
        query = query.where(Theme.owner_id == flt.owner)
    if flt.search:
        # Items first, then their themes: the matching items are few, the memberships many.
        matching = select(FeedbackItem.id).where(contains_text(session, FeedbackItem.text_redacted, flt.search))
        with_items = select(ThemeMembership.theme_id).where(ThemeMembership.item_id.in_(matching))
        query = query.where(or_(contains_text(session, Theme.label, flt.search),
                                contains_text(session, cast(Theme.keywords, String), flt.search),
                                Theme.id.in_(with_items)))
    return [(row[0], row[1], row[2], row[3], row[4], row[5], row[6]) for row in session.execute(query)]


def _all_time_counts(session: Session, column: QueryableAttribute[str | None]) -> dict[str, int]:
    rows = session.execute(select(column, func.count()).where(column.is_not(None)).group_by(column))
    return dict(sorted(((str(value), int(n)) for value, n in rows), key=lambda pair: (-pair[1], pair[0])))


def contains_text(session: Session, column: ColumnElement[str] | QueryableAttribute[str],
                  text: str) -> ColumnElement[bool]:
    """``column`` holds ``text`` in any case. SQLite's LIKE already ignores ASCII case (and its lower()
    knows no other), so it skips lower() on every row; PostgreSQL needs ILIKE."""
    if session.get_bind().dialect.name == "sqlite":
        return column.contains(text, autoescape=True)
    return column.icontains(text, autoescape=True)


def _row(theme: ThemeRow, sums: _Sums, total_items: int, all_time: bool) -> OverviewRow:
    theme_id, label, status, owner_id, owner, area_id, area_label = theme
    in_window = sum(sums.buckets)
    volume = in_window + (sums.older + sums.before if all_time else 0)
    previous_mean = sums.before / TREND_PERIODS
    # The newest bucket against the rate of every bucket before it in the look-back (31 of them).
    earlier_buckets = SPARK_BUCKETS * (TREND_PERIODS + 1) - 1
    expected = (sums.before + in_window - sums.buckets[-1]) / earlier_buckets
    return OverviewRow(
        id=theme_id, label=label, status=status, owner=owner, owner_id=owner_id, area_id=area_id,
        area_label=area_label, volume=volume,
        share_of_voice=volume / total_items if total_items else 0.0,
        mean_sentiment=sums.sentiment_sum / sums.sentiment_count if sums.sentiment_count else None,
        trend=(in_window + 1.0) / (previous_mean + 1.0), sparkline=list(sums.buckets),
        spike_score=spike_score(sums.buckets[-1], expected), impact=sums.impact, tiered_items=sums.tiered)


def _score_attention(rows: list[OverviewRow]) -> None:
    """Set each row's attention score: how much a person should look at it now, about 0 to 10.

    Why these parts: a spike (Poisson z) is news that may need action today, and being a z-score it is
    already fair between big and small themes; a rising trend is the slower form of the same news
    (log2: doubling counts 1, like halving would count -1, and falling themes add nothing); impact is
    who is asking (account value, customer tiers), scaled to the largest theme's so it needs no
    currency; unhappy themes weigh a little more, and sheer volume a little, so that among quiet themes
    the big, unhappy, valuable ones come first. Each part is capped so no one signal drowns the others.
    """
    top_impact = max((row.impact for row in rows), default=0.0)
    top_tiered = max((row.tiered_items for row in rows), default=0)
    top_volume = max((row.volume for row in rows), default=0)
    for row in rows:
        spike = min(max(row.spike_score, 0.0), 6.0) / 2.0  # 0..3
        trend = min(max(math.log2(row.trend), 0.0), 3.0)  # 0..3
        impact = (row.impact / top_impact if top_impact > 0 else 0.0) + (
            row.tiered_items / top_tiered if top_tiered else 0.0)  # 0..2
        unhappy = max(0.0, -(row.mean_sentiment or 0.0))  # 0..1 (sentiments run from -1 to 1)
        size = math.sqrt(row.volume / top_volume) if top_volume else 0.0  # 0..1
        row.attention = round(spike + trend + impact + unhappy + size, 4)


def _sorted(rows: list[OverviewRow], sort: str, descending: bool) -> list[OverviewRow]:
    """Rows in the order asked for; ties go by id, so paging never shows a row twice or skips one."""
    if sort == "label":
        return sorted(rows, key=lambda row: (row.label.casefold(), row.id), reverse=descending)
    sign = -1.0 if descending else 1.0
    if sort == "sentiment":  # themes without any sentiment go last, whichever the direction
        rated = [row for row in rows if row.mean_sentiment is not None]
        unrated = sorted((row for row in rows if row.mean_sentiment is None), key=lambda row: row.id)
        return sorted(rated, key=lambda row: (sign * (row.mean_sentiment or 0.0), row.id)) + unrated
    keys: dict[str, Callable[[OverviewRow], tuple[float, ...]]] = {
        "attention": lambda row: (row.attention,), "trend": lambda row: (row.trend,),
        "spike": lambda row: (row.spike_score,), "impact": lambda row: (row.impact, float(row.tiered_items)),
        "volume": lambda row: (float(row.volume),)}
    key = keys[sort]
    return sorted(rows, key=lambda row: (*(sign * part for part in key(row)), row.id))


def _with_mix(session: Session, rows: list[OverviewRow], conditions: list[ColumnElement[bool]],
              total_items: int) -> list[OverviewRow]:
    """The page's rows with their top channels among the window's items.

    A pass of its own, not columns of the main aggregate: one CASE per channel and kind on every item of
    the look-back cost more than reading the window's items once more.
    """
    if not rows:
        return rows
    # Small themes: their items one by one through the theme index. Big ones (the first page, mostly):
    # "+ 0" keeps SQLite off that index, so it reads the window's items in order instead, 2-3x faster
    # than fetching a quarter of them one by one.
    theme_column = ThemeMembership.theme_id + 0 if sum(row.volume for row in rows) * 8 > total_items else (
        ThemeMembership.theme_id)
    # Channels only: the page shows where a theme's feedback comes from; its kinds are on the theme's page
    # (grouping by kind too costs 45% more on the first page of 100,000 items).
    query = (select(ThemeMembership.theme_id, FeedbackItem.channel, func.count())
             .select_from(FeedbackItem).join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)
             .where(theme_column.in_([row.id for row in rows]), *conditions)
             .group_by(ThemeMembership.theme_id, FeedbackItem.channel))
    channels: dict[int, Counter[str]] = defaultdict(Counter)
    for theme_id, channel, n in session.execute(query):
        channels[theme_id][channel] += int(n)
    for row in rows:
        row.channels = _largest(channels[row.id])[:TOP_CHANNELS]
    return rows


def _largest(counter: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda pair: (-pair[1], pair[0]))
