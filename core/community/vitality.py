"""Community vitality per channel and ISO week (UTC): posts, active, new and returning authors, staff answers.

Definitions (a week is an ISO week, Monday 00:00 UTC to the next, of the item's ``created_at``):

- posts: the community's items that week; staff posts (metadata ``staff`` true) are counted apart, as
  ``staff_posts``, so a busy support team cannot hide a quiet community.
- active authors: distinct author pseudonyms with a community post that week; new: their first community
  post in this channel ever falls in that week; returning: active and not new. Items without an author
  count as posts only.
- staff answers (only where the channel says who is staff: some item carries a boolean ``staff``): the
  threads (metadata ``thread``) opened that week by a community post (``opens_thread`` true), and of
  those the ones whose first staff post came after the opening post; the median time to that post, in
  hours. A thread opened by staff (an announcement) is not a question waiting for staff.
- trend: the least-squares slope of posts per week over the window's complete weeks (the current week
  is still filling up and would always look like a fall), in posts per week per week, and as a share of
  the window's mean; "rising" or "falling" from +/-5 % of the mean a week, else "steady".

Everything is counted in SQL, grouped by week; only one row per thread opened in the window comes back
to Python (for the median). Items stamped after the current week (a source's clock) are not counted.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Integer, and_, cast, distinct, exists, extract, func, literal, select
from sqlalchemy.orm import Session, aliased

from core.clock import aware, utcnow
from core.community.item_metadata import metadata_flag, metadata_present, metadata_text
from core.errors import InvalidInput, NotFound
from core.models import Channel, FeedbackItem

WEEK = timedelta(days=7)
MAX_WEEKS = 104
TREND_STEADY_SHARE = 0.05


@dataclass(frozen=True)
class WeekFigures:
    start: datetime  # Monday 00:00 UTC
    complete: bool  # False for the current week, still filling up
    posts: int
    staff_posts: int
    active_authors: int
    new_authors: int
    threads_opened: int
    threads_staff_answered: int | None  # None where the channel does not say who is staff
    median_hours_to_staff_answer: float | None

    @property
    def iso_week(self) -> str:
        year, week, _ = self.start.isocalendar()
        return f"{year}-W{week:02d}"

    @property
    def returning_authors(self) -> int:
        return self.active_authors - self.new_authors

    @property
    def staff_answer_share(self) -> float | None:
        if self.threads_staff_answered is None or not self.threads_opened:
            return None
        return self.threads_staff_answered / self.threads_opened


@dataclass(frozen=True)
class Trend:
    slope: float | None  # posts per week, per week; None with fewer than two complete weeks
    change_share: float | None  # the slope as a share of the mean weekly posts
    direction: str  # rising, falling, steady, or "unknown"
    weeks_used: int


@dataclass(frozen=True)
class Vitality:
    channel: str
    weeks: list[WeekFigures]  # oldest first, ending with the current week
    trend: Trend
    staff_measured: bool
    active_authors: int  # distinct over the whole window
    threads_opened: int
    threads_staff_answered: int | None
    median_hours_to_staff_answer: float | None

    @property
    def staff_answer_share(self) -> float | None:
        if self.threads_staff_answered is None or not self.threads_opened:
            return None
        return self.threads_staff_answered / self.threads_opened


def week_start(moment: datetime) -> datetime:
    """Monday 00:00 UTC of the ISO week holding ``moment`` (a naive one is UTC)."""
    day = (aware(moment) or moment).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def week_index(session: Session, column: Any, first: datetime) -> ColumnElement[int]:
    """Whole weeks from ``first`` to ``column`` (a timestamp at or after ``first``), in SQL."""
    first_epoch = int(first.timestamp())
    seconds = int(WEEK.total_seconds())
    if session.get_bind().dialect.name == "sqlite":
        epoch: ColumnElement[Any] = cast(func.strftime("%s", column), Integer)
        return (epoch - literal(first_epoch)) // literal(seconds)
    return cast(func.floor((extract("epoch", column) - literal(first_epoch)) / literal(seconds)), Integer)


def _in_window(channel: str, first: datetime, end: datetime) -> list[ColumnElement[bool]]:
    return [FeedbackItem.channel == channel, FeedbackItem.created_at >= first, FeedbackItem.created_at < end]


def weekly_posts(session: Session, channel: str, first: datetime, weeks: int) -> tuple[list[int], list[int], list[int]]:
    """(community posts, staff posts, active community authors) per week from ``first``, oldest first."""
    staff = metadata_flag(session, "staff")
    inner = (select(week_index(session, FeedbackItem.created_at, first).label("week"), staff.label("staff"),
                    FeedbackItem.author_pseudonym.label("author"))
             .where(*_in_window(channel, first, first + WEEK * weeks)).subquery())
    posts, staff_posts, authors = [0] * weeks, [0] * weeks, [0] * weeks
    for week, is_staff, count, distinct_authors in session.execute(
            select(inner.c.week, inner.c.staff, func.count(), func.count(distinct(inner.c.author)))
            .group_by(inner.c.week, inner.c.staff)):
        slot = int(week)
        if is_staff:
            staff_posts[slot] += int(count)
        else:
            posts[slot] += int(count)
            authors[slot] = int(distinct_authors)
    return posts, staff_posts, authors


def _new_authors(session: Session, channel: str, first: datetime, weeks: int) -> list[int]:
    firsts = (select(FeedbackItem.author_pseudonym, func.min(FeedbackItem.created_at).label("first_at"))
              .where(FeedbackItem.channel == channel, FeedbackItem.author_pseudonym.is_not(None),
                     metadata_flag(session, "staff") == 0)
              .group_by(FeedbackItem.author_pseudonym).subquery())
    # Grouped by a subquery's column: PostgreSQL takes an expression with bound parameters in the select
    # list and the same one in GROUP BY for two different expressions.
    indexed = (select(week_index(session, firsts.c.first_at, first).label("week"))
               .where(firsts.c.first_at >= first, firsts.c.first_at < first + WEEK * weeks).subquery())
    counts = [0] * weeks
    for week, count in session.execute(select(indexed.c.week, func.count()).group_by(indexed.c.week)):
        counts[int(week)] = int(count)
    return counts


def _threads(session: Session, channel: str, first: datetime, end: datetime) -> list[tuple[datetime, datetime | None]]:
    """(opened at, first staff post after it or None) for each community thread opened in the window."""
    thread = metadata_text(session, "thread")
    opening_posts = (select(thread.label("thread"), FeedbackItem.created_at.label("at"))
                     .where(*_in_window(channel, first, end), thread.is_not(None),
                            metadata_flag(session, "opens_thread") == 1, metadata_flag(session, "staff") == 0)
                     .subquery())
    openers = (select(opening_posts.c.thread, func.min(opening_posts.c.at).label("opened_at"))
               .group_by(opening_posts.c.thread).subquery())
    staff_item = aliased(FeedbackItem)
    staff_thread = metadata_text(session, "thread", staff_item.metadata_json)
    staff_posts = (select(staff_thread.label("thread"), staff_item.created_at.label("at"))
                   .where(staff_item.channel == channel, staff_item.created_at >= first,
                          metadata_flag(session, "staff", staff_item.metadata_json) == 1, staff_thread.is_not(None))
                   .subquery())
    rows = session.execute(
        select(openers.c.opened_at, func.min(staff_posts.c.at))
        .select_from(openers.outerjoin(staff_posts, and_(staff_posts.c.thread == openers.c.thread,
                                                         staff_posts.c.at > openers.c.opened_at)))
        .group_by(openers.c.thread, openers.c.opened_at))
    return [(_utc(opened), _utc(answered) if answered is not None else None) for opened, answered in rows]


def _utc(moment: Any) -> datetime:
    if isinstance(moment, str):  # SQLite hands an aggregate's timestamp back as text
        moment = datetime.fromisoformat(moment)
    return (aware(moment) or moment).astimezone(UTC)


def staff_measured(session: Session, channel: str) -> bool:
    """Whether the channel says who is staff: some item of it carries a boolean ``staff``."""
    return bool(session.scalar(select(exists().where(FeedbackItem.channel == channel,
                                                     metadata_present(session, "staff")))))


def _median_hours(threads: Sequence[tuple[datetime, datetime | None]]) -> float | None:
    waits = [(answered - opened).total_seconds() / 3600 for opened, answered in threads if answered is not None]
    return statistics.median(waits) if waits else None


def posts_trend(posts: Sequence[int]) -> Trend:
    """The least-squares slope of ``posts`` (complete weeks, oldest first) and its direction."""
    if len(posts) < 2:
        return Trend(slope=None, change_share=None, direction="unknown", weeks_used=len(posts))
    slope = statistics.linear_regression(range(len(posts)), posts).slope
    mean = statistics.fmean(posts)
    share = slope / mean if mean else None
    if share is None:
        direction = "steady" if slope == 0 else "rising"
    else:
        direction = "rising" if share >= TREND_STEADY_SHARE else "falling" if share <= -TREND_STEADY_SHARE else "steady"
    return Trend(slope=slope, change_share=share, direction=direction, weeks_used=len(posts))


def channel_vitality(session: Session, channel: str, weeks: int = 12, now: datetime | None = None) -> Vitality:
    """The channel's figures for the last ``weeks`` ISO weeks, the current one included."""
    if not 1 <= weeks <= MAX_WEEKS:
        raise InvalidInput(f"weeks must be between 1 and {MAX_WEEKS}")
    current = week_start(now or utcnow())
    first = current - WEEK * (weeks - 1)
    end = current + WEEK
    posts, staff_posts, authors = weekly_posts(session, channel, first, weeks)
    new = _new_authors(session, channel, first, weeks)
    measured = staff_measured(session, channel)
    threads = _threads(session, channel, first, end)
    by_week: list[list[tuple[datetime, datetime | None]]] = [[] for _ in range(weeks)]
    for opened, answered in threads:
        by_week[int((opened - first) // WEEK)].append((opened, answered))
    figures = [WeekFigures(
        start=first + WEEK * slot, complete=slot < weeks - 1, posts=posts[slot], staff_posts=staff_posts[slot],
        active_authors=authors[slot], new_authors=new[slot], threads_opened=len(by_week[slot]),
        threads_staff_answered=sum(1 for _, answered in by_week[slot] if answered) if measured else None,
        median_hours_to_staff_answer=_median_hours(by_week[slot]) if measured else None)
        for slot in range(weeks)]
    window_authors = session.scalar(
        select(func.count(distinct(FeedbackItem.author_pseudonym)))
        .where(*_in_window(channel, first, end), metadata_flag(session, "staff") == 0))
    return Vitality(
        channel=channel, weeks=figures, trend=posts_trend(posts[:-1]), staff_measured=measured,
        active_authors=int(window_authors or 0), threads_opened=len(threads),
        threads_staff_answered=sum(1 for _, answered in threads if answered) if measured else None,
        median_hours_to_staff_answer=_median_hours(threads) if measured else None)


def known_channels(session: Session) -> list[str]:
    """Every channel with items or configured, by name."""
    names = set(session.scalars(select(FeedbackItem.channel).distinct()))
    names |= set(session.scalars(select(Channel.name)))
    return sorted(names)


def require_channel(session: Session, channel: str) -> str:
    """``channel`` when it is configured or has items; NotFound (404) otherwise."""
    configured = session.scalar(select(exists().where(Channel.name == channel)))
    if not configured and not session.scalar(select(exists().where(FeedbackItem.channel == channel))):
        raise NotFound(f"no channel named {channel!r} (neither configured nor with items)")
    return channel
