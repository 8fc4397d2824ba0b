"""Tables of community vitality (built by migration 0008): decline-alert episodes per channel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db import Base


class DeclineEpisode(Base):
    """A run of weeks in which a channel's posts fell every week: one notice to its owner per episode.

    ``peak_week`` (the Monday of the last week before the fall) is unique per channel, so two workers
    that see the same decline make one episode; the episode ends at the first week that rose again.
    """

    __tablename__ = "decline_episodes"
    __table_args__ = (UniqueConstraint("channel", "peak_week", name="uq_decline_channel_peak"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(128), index=True)
    peak_week: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    detected_week: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_week: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Posts per week from the peak to the week the decline was seen, oldest first.
    weekly_posts: Mapped[list[int]] = mapped_column(JSON, default=list)
    owner: Mapped[str | None] = mapped_column(String(128))
    target_type: Mapped[str | None] = mapped_column(String(64))
    # sending, sent, failed (tried again next round, up to a limit) or unrouted (nobody to tell)
    notice_state: Mapped[str] = mapped_column(String(32), default="sending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
