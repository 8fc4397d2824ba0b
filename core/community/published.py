""""You said, we did": a product manager publishes a theme, in their own words, for the public page.

An entry holds only what the person typed: a public title, what people asked for ("you said") and what
was done ("we did"), each made safe on save (core/community/public_text.py: plain text, redacted like an
item's text, authors' names replaced), and its dates. It never holds or shows the theme's items, quotes,
label, authors, owner or history. Publishing again updates the entry; unpublishing deletes it, so it is
gone from the page and the feed at once. All three are audited on the theme.

A theme that is ignored (noise, spam) cannot be published, and an entry already published is hidden
while its theme is ignored (it comes back if the theme is taken up again). A theme merged into another
keeps its entry: what was done stays true, and the person unpublishes it if not; a merged theme cannot
be published anew (publish the one it went into).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.audit import record
from core.clock import aware, utcnow
from core.community.models_published import MAX_TEXT_CHARS, MAX_TITLE_CHARS, PublishedTheme
from core.community.public_text import plain, public_text
from core.errors import Conflict, NotFound
from core.loop import FeedbackLoop
from core.models import AuditEntry, Theme
from core.themes.views import get_theme
from core.types import ThemeStatus

PUBLISH_ACTIONS = ("publish", "update_publication", "unpublish")
# Themes whose entries the public page leaves out, and themes that cannot be published.
HIDDEN_STATUSES = (ThemeStatus.IGNORED,)
UNPUBLISHABLE_STATUSES = (ThemeStatus.IGNORED, ThemeStatus.MERGED)


@dataclass(frozen=True)
class PublicEntry:
    """One entry as the public page and feed show it: nothing but the published texts and dates."""

    entry_id: int
    entry_uuid: str
    title: str
    you_said: str
    we_did: str
    published_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Publication:
    """What publishing did: the stored entry, whether it is new, and whether saving changed the texts."""

    entry: PublicEntry
    created: bool
    altered: bool


def _public(row: PublishedTheme) -> PublicEntry:
    return PublicEntry(entry_id=row.id, entry_uuid=row.entry_uuid, title=row.title, you_said=row.you_said,
                       we_did=row.we_did, published_at=aware(row.published_at) or row.published_at,
                       updated_at=aware(row.updated_at) or row.updated_at)


def entry_for_theme(session: Session, theme_id: int) -> PublicEntry | None:
    """The theme's published entry, if it has one."""
    row = session.scalar(select(PublishedTheme).where(PublishedTheme.theme_id == theme_id))
    return _public(row) if row is not None else None


def publish(loop: FeedbackLoop, session: Session, theme_id: int, actor: str, *, title: str, you_said: str,
            we_did: str) -> Publication:
    """Publish the theme with these texts, or update its entry; InvalidInput names a text that cannot go out."""
    theme = get_theme(session, theme_id)
    if theme.status in UNPUBLISHABLE_STATUSES:
        raise Conflict(f"theme {theme_id} is {theme.status}: only a theme people still see can be published"
                       + (" (publish the theme it was merged into)" if theme.status == ThemeStatus.MERGED else ""))
    texts = {"title": title, "you said": you_said, "we did": we_did}
    limits = {"title": MAX_TITLE_CHARS, "you said": MAX_TEXT_CHARS, "we did": MAX_TEXT_CHARS}
    safe = {field: public_text(loop, session, text, field, limits[field]) for field, text in texts.items()}
    altered = any(safe[field] != plain(text) for field, text in texts.items())
    row = session.scalar(select(PublishedTheme).where(PublishedTheme.theme_id == theme_id))
    created = row is None
    now = utcnow()
    if row is None:
        row = PublishedTheme(theme_id=theme_id, entry_uuid=str(uuid.uuid4()), published_at=now)
        session.add(row)
    row.title, row.you_said, row.we_did, row.updated_at = safe["title"], safe["you said"], safe["we did"], now
    session.flush()
    # The title is public anyway; the texts stay out of the audit log's details (the entry holds them).
    record(session, actor, "publish" if created else "update_publication", "theme", theme_id,
           {"title": row.title, "entry": row.id})
    return Publication(_public(row), created, altered)


def unpublish(session: Session, theme_id: int, actor: str) -> None:
    """Take the theme's entry off the public page and feed (it is deleted); NotFound when none."""
    get_theme(session, theme_id)
    row = session.scalar(select(PublishedTheme).where(PublishedTheme.theme_id == theme_id))
    if row is None:
        raise NotFound(f"theme {theme_id} is not published")
    record(session, actor, "unpublish", "theme", theme_id, {"title": row.title, "entry": row.id})
    session.delete(row)
    session.flush()


def list_published(session: Session) -> list[PublicEntry]:
    """Every entry the public page shows, the latest change first."""
    rows = session.scalars(
        select(PublishedTheme).join(Theme, Theme.id == PublishedTheme.theme_id)
        .where(Theme.status.not_in(HIDDEN_STATUSES))
        .order_by(PublishedTheme.updated_at.desc(), PublishedTheme.id.desc()))
    return [_public(row) for row in rows]


def last_change(session: Session, entries: list[PublicEntry]) -> datetime | None:
    """When the published set last changed: the newest entry, or a later publish or unpublish."""
    audited = aware(session.scalar(select(func.max(AuditEntry.at)).where(
        AuditEntry.entity_type == "theme", AuditEntry.action.in_(PUBLISH_ACTIONS))))
    moments = [entry.updated_at for entry in entries] + ([audited] if audited is not None else [])
    return max(moments) if moments else None
