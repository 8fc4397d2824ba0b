"""A theme's page: its volume and sentiment over time, channel mix, items, tickets and history.

Everything is counted in SQL for the one theme, so a theme of 20,000 items costs one indexed pass over
its memberships, not 20,000 Python objects; only the page of items shown is loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Integer, String, and_, cast, extract, func, literal, or_, select
from sqlalchemy.orm import Session

from core.clock import aware, utcnow
from core.errors import InvalidInput
from core.models import AuditEntry, Delivery, FeedbackItem, ThemeMembership
from core.themes.overview import contains_text
from core.themes.overview_filter import checked_search
from core.themes.views import get_theme

Grain = Literal["day", "week"]
# How far back each grain looks by default: a quarter in days, half a year in weeks.
GRAIN_BUCKETS: dict[str, int] = {"day": 90, "week": 26}
MAX_BUCKETS = 400
MAX_ITEMS_PER_PAGE = 200
MAX_HISTORY = 500


@dataclass(frozen=True)
class TimelineBucket:
    start: datetime  # midnight UTC (day) or Monday midnight UTC (week)
    volume: int
    mean_sentiment: float | None  # None when no item of the bucket has a sentiment


@dataclass(frozen=True)
class ChannelShare:
    channel: str
    items: int
    share: float


@dataclass(frozen=True)
class ItemRow:
    """An item as the workspace shows it: the redacted text only, never the original."""

    id: int
    channel: str
    created_at: datetime
    text: str
    url: str | None
    author: str | None
    sentiment: float | None
    kind: str | None
    customer_tier: str | None
    account_value: float | None
    membership_source: str
    score: float | None


@dataclass(frozen=True)
class ItemsPage:
    rows: list[ItemRow]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


@dataclass(frozen=True)
class TicketRow:
    id: int
    target_type: str
    state: str
    external_ref: str | None
    url: str | None
    external_status: str | None
    title: str
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class HistoryRow:
    id: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    details: dict[str, Any]
    undone_by_id: int | None = None  # the "undo" entry that reversed this change


def theme_timeline(session: Session, theme_id: int, grain: str = "day", now: datetime | None = None,
                   buckets: int | None = None) -> list[TimelineBucket]:
    """Volume and mean sentiment per day or week, oldest first, ending with the one holding ``now``."""
    get_theme(session, theme_id)
    if grain not in GRAIN_BUCKETS:
        raise InvalidInput(f"grain must be one of {', '.join(GRAIN_BUCKETS)}, not {grain!r}")
    count = GRAIN_BUCKETS[grain] if buckets is None else buckets
    if not 1 <= count <= MAX_BUCKETS:
        raise InvalidInput(f"a timeline has 1 to {MAX_BUCKETS} buckets")
    now = (aware(now) or utcnow()).astimezone(UTC)  # naive: UTC, as stored
    step = timedelta(days=1 if grain == "day" else 7)
    newest = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if grain == "week":
        newest -= timedelta(days=newest.weekday())
    first = newest - step * (count - 1)
    index = _bucket_index(session, first, step).label("bucket")
    inner = (select(index, FeedbackItem.sentiment.label("sentiment"))
             .join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)
             .where(ThemeMembership.theme_id == theme_id, FeedbackItem.created_at >= first).subquery())
    volumes = [0] * count
    sentiment_sums = [0.0] * count
    rated = [0] * count
    for position, items, total, with_sentiment in session.execute(
            select(inner.c.bucket, func.count(), func.sum(inner.c.sentiment), func.count(inner.c.sentiment))
            .group_by(inner.c.bucket)):
        slot = min(int(position), count - 1)  # an item stamped after ``now`` (a source's clock) is "now"
        volumes[slot] += int(items)
        sentiment_sums[slot] += float(total or 0.0)
        rated[slot] += int(with_sentiment)
    return [TimelineBucket(start=first + step * slot, volume=volumes[slot],
                           mean_sentiment=sentiment_sums[slot] / rated[slot] if rated[slot] else None)
            for slot in range(count)]


def _bucket_index(session: Session, first: datetime, step: timedelta) -> ColumnElement[Any]:
    """Which bucket an item's ``created_at`` falls in, counted from ``first``, in whole seconds.

    SQLite stores UTC text and PostgreSQL an absolute time, so each has its own way to the epoch; the
    query keeps only items at or after ``first``, so the division never meets a negative number.
    """
    seconds = int(step.total_seconds())
    first_epoch = int(first.timestamp())
    if session.get_bind().dialect.name == "sqlite":
        epoch: ColumnElement[Any] = cast(func.strftime("%s", FeedbackItem.created_at), Integer)
        return (epoch - literal(first_epoch)) // literal(seconds)
    return cast(func.floor((extract("epoch", FeedbackItem.created_at) - literal(first_epoch)) / literal(seconds)),
                Integer)


def channel_mix(session: Session, theme_id: int) -> list[ChannelShare]:
    """How many of the theme's items came from each channel, largest first."""
    get_theme(session, theme_id)
    rows = session.execute(
        select(FeedbackItem.channel, func.count())
        .join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)
        .where(ThemeMembership.theme_id == theme_id).group_by(FeedbackItem.channel)).all()
    total = sum(int(n) for _, n in rows)
    return sorted((ChannelShare(channel=channel, items=int(n), share=int(n) / total) for channel, n in rows),
                  key=lambda share: (-share.items, share.channel))


def theme_items(session: Session, theme_id: int, search: str = "", page: int = 1,
                per_page: int = 50) -> ItemsPage:
    """One page of the theme's items, newest first; ``search`` matches their redacted text (any case)."""
    get_theme(session, theme_id)
    if not 1 <= per_page <= MAX_ITEMS_PER_PAGE:
        raise InvalidInput(f"per_page must be between 1 and {MAX_ITEMS_PER_PAGE}")
    if page < 1:
        raise InvalidInput("page must be 1 or more")
    search = checked_search(search)
    conditions: list[ColumnElement[bool]] = [ThemeMembership.theme_id == theme_id]
    if search:
        conditions.append(contains_text(session, FeedbackItem.text_redacted, search))
    joined = (select(FeedbackItem.id).join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)
              .where(*conditions))
    total = int(session.scalar(select(func.count()).select_from(joined.subquery())) or 0)
    # The page's ids first, then their rows: sorting a big theme's ids alone is 3x cheaper than sorting
    # its whole rows, texts included, to keep 50 of them.
    ids = list(session.scalars(joined.order_by(FeedbackItem.created_at.desc(), FeedbackItem.id.desc())
                               .limit(per_page).offset((page - 1) * per_page)))
    query = (select(FeedbackItem.id, FeedbackItem.channel, FeedbackItem.created_at, FeedbackItem.text_redacted,
                    FeedbackItem.url, FeedbackItem.author_pseudonym, FeedbackItem.sentiment, FeedbackItem.kind,
                    FeedbackItem.customer_tier, FeedbackItem.account_value, ThemeMembership.source,
                    ThemeMembership.score)
             .join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id).where(FeedbackItem.id.in_(ids)))
    found = {r[0]: ItemRow(id=r[0], channel=r[1], created_at=_utc(r[2]), text=r[3], url=r[4], author=r[5],
                           sentiment=r[6], kind=r[7], customer_tier=r[8], account_value=r[9],
                           membership_source=r[10], score=r[11]) for r in session.execute(query)} if ids else {}
    rows = [found[item_id] for item_id in ids]
    return ItemsPage(rows=rows, total=total, page=page, per_page=per_page)


def theme_tickets(session: Session, theme_id: int) -> list[TicketRow]:
    """The theme's tickets in every target, oldest first."""
    get_theme(session, theme_id)
    deliveries = session.scalars(select(Delivery).where(Delivery.theme_id == theme_id)
                                 .order_by(Delivery.created_at, Delivery.id))
    return [TicketRow(id=d.id, target_type=d.target_type, state=d.state, external_ref=d.external_ref, url=d.url,
                      external_status=d.external_status, title=d.title, attempts=d.attempts,
                      last_error=d.last_error, created_at=_utc(d.created_at), updated_at=_utc(d.updated_at))
            for d in deliveries]


def theme_history(session: Session, theme_id: int, limit: int = 50) -> list[HistoryRow]:
    """What people and the router did to the theme, newest first.

    Besides the entries about the theme itself, this finds those that name it in their details: a
    theme merged into it, one split off it, items moved out of it. Audit logs are small next to the
    items, and these are read only for entries about themes.
    """
    get_theme(session, theme_id)
    if not 1 <= limit <= MAX_HISTORY:
        raise InvalidInput(f"limit must be between 1 and {MAX_HISTORY}")
    named = str(theme_id)

    def detail(key: str) -> ColumnElement[Any]:
        # As text on both databases: SQLite's json_extract gives a number, PostgreSQL's ->> text.
        return cast(AuditEntry.details[key].as_string(), String)

    about = or_(AuditEntry.entity_id == named,
                and_(AuditEntry.action == "merge", detail("into") == named),
                and_(AuditEntry.action == "split", detail("new_theme") == named),
                and_(AuditEntry.action.in_(("move", "pin")), detail("from") == named))
    entries = session.scalars(select(AuditEntry).where(AuditEntry.entity_type == "theme", about)
                              .order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit))
    return [HistoryRow(id=e.id, at=_utc(e.at), actor=e.actor, action=e.action, entity_type=e.entity_type,
                       entity_id=e.entity_id, details=dict(e.details or {}), undone_by_id=e.undone_by_id)
            for e in entries]


def _utc(moment: datetime) -> datetime:
    value = aware(moment)
    assert value is not None
    return value
