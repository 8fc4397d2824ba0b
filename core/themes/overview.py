"""The themes overview: every theme ranked by what needs a person's attention, from SQL aggregates.

Aggregate queries count each theme's items per time bucket (GROUP BY theme, bucket) and in the windows
before, so the cost is a pass over the look-back period's items in the database, never one Python
object per item: volume, share of voice, sentiment, trend, sparkline, spike score and impact all come
from those sums. Channels and kinds are counted only for the themes on the page.

Time buckets: a window of length W (7d, 30d, 90d) is cut into ``SPARK_BUCKETS`` equal buckets (the
sparkline, oldest first); the ``TREND_PERIODS`` windows before it are the baseline. "all" counts every
item in the volume but takes its signals from the last 90 days, since all of time has no "before".
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import ColumnElement, String, case, cast, func, literal_column, or_, select
from sqlalchemy.orm import QueryableAttribute, Session

from core.clock import utcnow
from core.errors import InvalidInput
from core.models import FeedbackItem, Owner, Theme, ThemeMembership
from core.themes.signals import spike_score
from core.types import INACTIVE_STATUSES, ThemeStatus

WINDOWS: dict[str, timedelta | None] = {"7d": timedelta(days=7), "30d": timedelta(days=30),
                                        "90d": timedelta(days=90), "all": None}
SIGNAL_PERIOD_FOR_ALL = timedelta(days=90)
SPARK_BUCKETS = 8
TREND_PERIODS = 3
# The direction each sort key reads best in by default: what needs attention first, labels A to Z.
SORTS: dict[str, Literal["asc", "desc"]] = {
    "attention": "desc", "trend": "desc", "spike": "desc", "impact": "desc", "volume": "desc",
    "sentiment": "asc", "label": "asc"}
DEFAULT_WINDOW = "30d"
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
MAX_PAGE = 10_000
MAX_SEARCH_CHARS = 200
MAX_NAME_CHARS = 128  # FeedbackItem.channel's width; kinds are shorter still
TOP_CHANNELS = 3
STATUSES = tuple(status.value for status in ThemeStatus)
ORDERS: dict[str, Literal["", "asc", "desc"]] = {"": "", "asc": "asc", "desc": "desc"}
QUERY_KEYS = ("q", "status", "owner", "channel", "kind", "window", "sort", "order", "page", "per_page")

Owned = int | Literal["none"] | None


@dataclass(frozen=True)
class OverviewFilter:
    """What the overview shows; every field is checked when built, so a bad link cannot reach SQL."""

    statuses: tuple[str, ...] = ()  # empty: every status but archived and merged
    owner: Owned = None  # an owner id, "none" for themes nobody owns, None for all
    channel: str | None = None
    kind: str | None = None
    window: str = DEFAULT_WINDOW
    search: str = ""
    sort: str = "attention"
    order: Literal["", "asc", "desc"] = ""  # "": the sort key's own direction (SORTS)
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    def __post_init__(self) -> None:
        unknown = [status for status in self.statuses if status not in STATUSES]
        if unknown:
            raise InvalidInput(f"status {unknown[0]!r} is not one of {', '.join(STATUSES)}")
        object.__setattr__(self, "statuses", tuple(sorted(set(self.statuses))))
        if self.owner is not None and self.owner != "none" and (
                isinstance(self.owner, bool) or not isinstance(self.owner, int) or self.owner < 1):
            raise InvalidInput("owner must be an owner id (a positive whole number) or 'none'")
        for name, value, limit in (("channel", self.channel, MAX_NAME_CHARS), ("kind", self.kind, 32)):
            if value is not None and not (0 < len(value) <= limit):
                raise InvalidInput(f"{name} must be 1 to {limit} characters")
        if self.window not in WINDOWS:
            raise InvalidInput(f"window {self.window!r} is not one of {', '.join(WINDOWS)}")
        object.__setattr__(self, "search", self.search.strip())
        if len(self.search) > MAX_SEARCH_CHARS:
            raise InvalidInput(f"search must be at most {MAX_SEARCH_CHARS} characters")
        if self.sort not in SORTS:
            raise InvalidInput(f"sort {self.sort!r} is not one of {', '.join(SORTS)}")
        if self.order not in ("", "asc", "desc"):
            raise InvalidInput("order must be 'asc' or 'desc'")
        if not 1 <= self.page <= MAX_PAGE:
            raise InvalidInput(f"page must be between 1 and {MAX_PAGE}")
        if not 1 <= self.per_page <= MAX_PER_PAGE:
            raise InvalidInput(f"per_page must be between 1 and {MAX_PER_PAGE}")

    @property
    def descending(self) -> bool:
        return (self.order or SORTS[self.sort]) == "desc"

    def with_changes(self, **changes: Any) -> OverviewFilter:
        """This filter with some fields changed; any change but the page itself goes back to page 1."""
        changes.setdefault("page", 1)
        return replace(self, **changes)

    def to_query(self) -> str:
        return filter_to_query(self)


def filter_to_query(flt: OverviewFilter) -> str:
    """The filter as a query string holding only what differs from the defaults, in a fixed order."""
    pairs: list[tuple[str, str]] = []
    if flt.search:
        pairs.append(("q", flt.search))
    pairs += [("status", status) for status in flt.statuses]
    if flt.owner is not None:
        pairs.append(("owner", str(flt.owner)))
    pairs += [(key, value) for key, value in (("channel", flt.channel), ("kind", flt.kind)) if value is not None]
    for key, value, default in (("window", flt.window, DEFAULT_WINDOW), ("sort", flt.sort, "attention"),
                                ("order", flt.order, ""), ("page", str(flt.page), "1"),
                                ("per_page", str(flt.per_page), str(DEFAULT_PER_PAGE))):
        if value != default:
            pairs.append((key, value))
    return urlencode(pairs)


def filter_from_query(params: str | Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]],
                      ignore: Iterable[str] = ()) -> OverviewFilter:
    """The filter a query string (or its pairs: Starlette's ``query_params.multi_items()``) asks for.

    Empty values mean "no filter" (an HTML form sends its empty fields); unknown names, repeated
    single-valued names and values that do not parse are refused with ``InvalidInput``, except the
    names in ``ignore`` (parameters of the page itself).
    """
    pairs = _pairs(params)
    skipped = set(ignore)
    values: dict[str, list[str]] = defaultdict(list)
    for key, value in pairs:
        if key in skipped:
            continue
        if key not in QUERY_KEYS:
            raise InvalidInput(f"unknown parameter {key!r}; expected one of {', '.join(QUERY_KEYS)}")
        if value.strip():
            values[key].append(value.strip())
    for key, found in values.items():
        if key != "status" and len(found) > 1:
            raise InvalidInput(f"parameter {key!r} given {len(found)} times; give it once")
    one = {key: found[0] for key, found in values.items() if key != "status"}
    owner: Owned = None
    if "owner" in one:
        owner = "none" if one["owner"] == "none" else _whole_number("owner", one["owner"])
    order = ORDERS.get(one.get("order", ""))
    if order is None:
        raise InvalidInput("order must be 'asc' or 'desc'")
    return OverviewFilter(
        statuses=tuple(values.get("status", [])), owner=owner, channel=one.get("channel"), kind=one.get("kind"),
        window=one.get("window", DEFAULT_WINDOW), search=one.get("q", ""), sort=one.get("sort", "attention"),
        order=order, page=_whole_number("page", one.get("page", "1")),
        per_page=_whole_number("per_page", one.get("per_page", str(DEFAULT_PER_PAGE))))


def _pairs(params: str | Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(params, str):
        try:
            return parse_qsl(params.lstrip("?"), keep_blank_values=True, strict_parsing=False,
                             max_num_fields=100)
        except ValueError as error:
            raise InvalidInput(f"the query string cannot be read: {error}") from error
    if isinstance(params, Mapping):
        pairs: list[tuple[str, str]] = []
        for key, value in params.items():
            pairs += [(key, value)] if isinstance(value, str) else [(key, str(v)) for v in value]
        return pairs
    return [(str(key), str(value)) for key, value in params]


def _whole_number(name: str, value: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise InvalidInput(f"{name} must be a positive whole number, not {value[:40]!r}")
    return int(value)


@dataclass
class OverviewRow:
    """One theme's line; filled in place while the page is built (attention, then the page's mix)."""

    id: int
    label: str
    status: str
    owner: str | None
    owner_id: int | None
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
    kinds: dict[str, int] = field(default_factory=dict)


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
    now = (now or utcnow()).astimezone(UTC)
    period = WINDOWS[flt.window] or SIGNAL_PERIOD_FOR_ALL
    step = period / SPARK_BUCKETS
    window_start = now - period
    lookback_start = now - period * (TREND_PERIODS + 1)
    starts = [window_start + step * index for index in range(SPARK_BUCKETS)]

    in_window = _item_conditions(flt, None if flt.window == "all" else window_start)
    themes = _themes(session, flt)
    counts = {"channel": _all_time_counts(session, FeedbackItem.channel),
              "kind": _all_time_counts(session, FeedbackItem.kind)}
    sums = _bucket_sums(session, _item_conditions(flt, None), starts, lookback_start, all_time=flt.window == "all")
    total_items = int(session.scalar(select(func.count()).select_from(FeedbackItem).where(*in_window)) or 0)

    rows = [_row(theme, sums.get(theme[0], _Sums()), total_items, flt.window == "all") for theme in themes]
    if flt.channel is not None or flt.kind is not None:
        rows = [row for row in rows if row.volume]  # a theme without such items is not about them
    counts["status"] = dict(sorted(Counter(row.status for row in rows).items()))
    wanted = set(flt.statuses) if flt.statuses else set(STATUSES) - set(INACTIVE_STATUSES)
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
    return conditions


def _bucket_sums(session: Session, conditions: list[ColumnElement[bool]], starts: list[datetime],
                 lookback_start: datetime, all_time: bool) -> dict[int, _Sums]:
    """Per theme: items per bucket of the window with their sentiment and impact, and the items before.

    Two queries, not one CASE over the whole look-back: SQLite's GROUP BY sorts every row it groups, and
    rows carrying only a theme id (the windows before) sort at a third of the cost (2x faster in all).
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


def _themes(session: Session, flt: OverviewFilter) -> list[tuple[int, str, str, int | None, str | None]]:
    query = select(Theme.id, Theme.label, Theme.status, Theme.owner_id, Owner.name).outerjoin(
        Owner, Owner.id == Theme.owner_id)
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
    return [(row[0], row[1], row[2], row[3], row[4]) for row in session.execute(query)]


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


def _row(theme: tuple[int, str, str, int | None, str | None], sums: _Sums, total_items: int,
         all_time: bool) -> OverviewRow:
    theme_id, label, status, owner_id, owner = theme
    in_window = sum(sums.buckets)
    volume = in_window + (sums.older + sums.before if all_time else 0)
    previous_mean = sums.before / TREND_PERIODS
    # The newest bucket against the rate of every bucket before it in the look-back (31 of them).
    earlier_buckets = SPARK_BUCKETS * (TREND_PERIODS + 1) - 1
    expected = (sums.before + in_window - sums.buckets[-1]) / earlier_buckets
    return OverviewRow(
        id=theme_id, label=label, status=status, owner=owner, owner_id=owner_id, volume=volume,
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
    """The page's rows with their top channels and kinds among the window's items.

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
    query = (select(ThemeMembership.theme_id, FeedbackItem.channel, FeedbackItem.kind, func.count())
             .select_from(FeedbackItem).join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)
             .where(theme_column.in_([row.id for row in rows]), *conditions)
             .group_by(ThemeMembership.theme_id, FeedbackItem.channel, FeedbackItem.kind))
    channels: dict[int, Counter[str]] = defaultdict(Counter)
    kinds: dict[int, Counter[str]] = defaultdict(Counter)
    for theme_id, channel, kind, n in session.execute(query):
        channels[theme_id][channel] += int(n)
        if kind is not None:
            kinds[theme_id][kind] += int(n)

    for row in rows:
        row.channels, row.kinds = _largest(channels[row.id])[:TOP_CHANNELS], dict(_largest(kinds[row.id]))
    return rows


def _largest(counter: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda pair: (-pair[1], pair[0]))
