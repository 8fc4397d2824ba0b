"""The table of co-creation invitations (``champion_invitations``, migration 0009), and its erasure."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from core import models  # noqa: F401  (the themes table its foreign key names)
from core.clock import utcnow
from core.db import Base

# The states an invitation goes through; "sending" is never left by a retry (see core/community/invitations.py).
PENDING, SENDING, SENT, FAILED, ERASED = "pending", "sending", "sent", "failed", "erased"
ANSWERS = ("accepted", "declined")


class ChampionInvitation(Base):
    """One invitation of one author to co-create on one theme; unique, so nobody is asked twice."""

    __tablename__ = "champion_invitations"
    __table_args__ = (UniqueConstraint("theme_id", "author_pseudonym", name="uq_champion_invitation"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    theme_id: Mapped[int] = mapped_column(ForeignKey("themes.id", ondelete="CASCADE"))
    # NULL once the author is erased: the row then says only that an invitation was made.
    author_pseudonym: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str | None] = mapped_column(String(128))
    thread_ref: Mapped[str | None] = mapped_column(String(512))
    state: Mapped[str] = mapped_column(String(32), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    reply_ref: Mapped[str | None] = mapped_column(String(256))
    last_error: Mapped[str | None] = mapped_column(Text)
    invited_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    answer: Mapped[str | None] = mapped_column(String(16))
    answered_by: Mapped[str | None] = mapped_column(String(128))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def forget_invitations(session: Session, pseudonyms: set[str]) -> int:
    """Scrub erased authors' invitations as erasure scrubs quotes: the row stays (the audit log names it),
    without the pseudonym, the thread it went to, the posted reply's id, or the answer."""
    if not pseudonyms:
        return 0
    result = session.execute(
        update(ChampionInvitation).where(ChampionInvitation.author_pseudonym.in_(sorted(pseudonyms)))
        .values(author_pseudonym=None, thread_ref=None, reply_ref=None, last_error=None, answer=None,
                answered_by=None, answered_at=None, state=ERASED)
        .execution_options(synchronize_session="fetch"))
    return int(getattr(result, "rowcount", 0) or 0)
