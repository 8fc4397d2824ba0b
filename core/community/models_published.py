"""The "you said, we did" table: what a product manager published about a theme, in their own words."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db import Base

MAX_TITLE_CHARS = 200
MAX_TEXT_CHARS = 2000


class PublishedTheme(Base):
    """One theme's public entry: only the texts a person typed (redacted on save), never items or names."""

    __tablename__ = "published_themes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Unique: a theme has at most one entry, and publishing again updates it.
    theme_id: Mapped[int] = mapped_column(ForeignKey("themes.id", ondelete="CASCADE"), unique=True)
    # The Atom entry's permanent id (urn:uuid:...): the feed never exposes internal ids as identities.
    entry_uuid: Mapped[str] = mapped_column(String(36), unique=True)
    title: Mapped[str] = mapped_column(String(MAX_TITLE_CHARS))
    you_said: Mapped[str] = mapped_column(Text)
    we_did: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
