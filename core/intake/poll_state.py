"""Where each polled channel stands: its cursor, when it is next due, and what went wrong last."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base


class ChannelPollState(Base):
    """One row per polled channel (gone with its channel): committed with each page it stored."""

    __tablename__ = "channel_poll_states"
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True)
    # The poller's own bookmark (a since-id, the newest timestamp seen, an ETag...), stored with the items.
    cursor: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Set when a poll is claimed as if it will fail, so a worker killed mid-poll still backs off, and two
    # workers never poll one channel at once (the claim is a compare-and-set on this column).
    next_poll_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    last_polled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The source asked us to wait (429 with Retry-After): nothing is fetched before this.
    throttled_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    items_total: Mapped[int] = mapped_column(Integer, default=0)
