"""Who leads a theme's conversation: its champions, named by pseudonym only.

Read from the theme's member items. For each author: the posts they made, the replies they received
(posts by other authors in the threads they opened: the item metadata conventions ``thread`` and
``opens_thread`` that channels fill), and when they first posted. The combined order is a rank sum (a
Borda count): every author is ranked on each of the three (most posts, most replies received, earliest
first post; equal values share a rank, and the next rank skips, "1224"), the three ranks are added, and
the smallest sum leads. Equal sums go to more posts, then more replies, then the earlier first post,
then the pseudonym, so the order is the same on every reading.

Staff (any item of theirs with ``"staff": true``), erased authors and items without an author are never
champions; a post without an author counts as nobody's reply (it may be the opener's own).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.clock import aware
from core.models import FeedbackItem, ThemeMembership
from core.routing.replies import erased_pseudonyms
from core.themes.views import get_theme

DEFAULT_LIMIT = 5
MAX_LIMIT = 50


@dataclass(frozen=True)
class Post:
    """What the ranking reads of one member item."""

    author: str | None
    channel: str
    thread: str | None
    opens_thread: bool
    staff: bool
    created_at: datetime


@dataclass(frozen=True)
class Champion:
    """One author's part in a theme's conversation."""

    pseudonym: str
    posts: int
    threads_opened: int
    replies_received: int
    first_post_at: datetime
    channels: tuple[str, ...]


def post_of(author: str | None, channel: str, created_at: datetime, metadata: Mapping[str, Any] | None) -> Post:
    facts = metadata or {}
    thread = facts.get("thread")
    return Post(author=author, channel=channel, thread=str(thread) if thread not in (None, "") else None,
                opens_thread=facts.get("opens_thread") is True, staff=facts.get("staff") is True,
                created_at=aware(created_at) or created_at)


def member_posts(session: Session, theme_id: int) -> list[Post]:
    """The theme's member items as posts, leaving out those whose author was erased (the source said so)."""
    rows = session.execute(
        select(FeedbackItem.author_pseudonym, FeedbackItem.channel, FeedbackItem.created_at,
               FeedbackItem.metadata_json)
        .join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id).where(ThemeMembership.theme_id == theme_id))
    return [post_of(row.author_pseudonym, row.channel, row.created_at, row.metadata_json) for row in rows
            if not (row.metadata_json or {}).get("author_erased")]


def _replies_received(posts: Iterable[Post]) -> tuple[dict[str, int], dict[str, int]]:
    """Threads opened and replies received per author, within the given posts."""
    by_thread: dict[tuple[str, str], list[Post]] = defaultdict(list)
    for post in posts:
        if post.thread is not None:
            by_thread[(post.channel, post.thread)].append(post)
    opened: dict[str, int] = defaultdict(int)
    received: dict[str, int] = defaultdict(int)
    for thread_posts in by_thread.values():
        openers = {post.author for post in thread_posts if post.opens_thread and post.author is not None}
        for opener in openers:
            opened[opener] += 1
            received[opener] += sum(1 for post in thread_posts if post.author not in (None, opener))
    return opened, received


def _ranks(keys: Mapping[str, Any]) -> dict[str, int]:
    """Standard competition ranks ("1224") of each author by ``keys`` (smaller is better)."""
    ordered = sorted(keys.values())
    return {author: bisect_left(ordered, key) + 1 for author, key in keys.items()}


def rank_authors(posts: list[Post], erased: set[str]) -> list[Champion]:
    """Every author who may be a champion, in the combined order (see the module's docstring)."""
    staff = {post.author for post in posts if post.staff and post.author is not None}
    opened, received = _replies_received(posts)
    mine: dict[str, list[Post]] = defaultdict(list)
    for post in posts:
        if post.author is not None and post.author not in staff and post.author not in erased:
            mine[post.author].append(post)
    champions = {author: Champion(
        pseudonym=author, posts=len(own), threads_opened=opened.get(author, 0),
        replies_received=received.get(author, 0), first_post_at=min(post.created_at for post in own),
        channels=tuple(sorted({post.channel for post in own}))) for author, own in mine.items()}
    total: dict[str, int] = defaultdict(int)
    for ranks in (_ranks({a: -c.posts for a, c in champions.items()}),
                  _ranks({a: -c.replies_received for a, c in champions.items()}),
                  _ranks({a: c.first_post_at for a, c in champions.items()})):
        for author, rank in ranks.items():
            total[author] += rank
    return sorted(champions.values(), key=lambda c: (total[c.pseudonym], -c.posts, -c.replies_received,
                                                     c.first_post_at, c.pseudonym))


def theme_champions(session: Session, theme_id: int, limit: int = DEFAULT_LIMIT) -> list[Champion]:
    """The theme's top ``limit`` champions (404 for a theme that does not exist)."""
    get_theme(session, theme_id)
    return rank_authors(member_posts(session, theme_id), erased_pseudonyms(session))[:max(0, limit)]


def champion_of(session: Session, theme_id: int, pseudonym: str) -> Champion | None:
    """The author's part in the theme, at whatever rank; None when they may not be a champion of it."""
    return next((champion for champion in rank_authors(member_posts(session, theme_id), erased_pseudonyms(session))
                 if champion.pseudonym == pseudonym), None)
