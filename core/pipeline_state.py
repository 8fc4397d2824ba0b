"""What the pipeline holds right now, read from the database: work waiting per queue and the outbox's states.

The database is the truth every process shares (API servers and workers alike), so these figures are the
same whichever process is asked; ``/metrics`` reports them at each scrape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.loop import FeedbackLoop
from core.models import Delivery, FeedbackItem, LoopReply, ThemeMembership

RETRYABLE_STATES = ("pending", "failed")


@dataclass(frozen=True)
class QueueState:
    """Work waiting in one queue, and how long its oldest piece has waited (None when empty)."""

    depth: int
    oldest_age_s: float | None


@dataclass(frozen=True)
class PipelineState:
    queues: dict[str, QueueState]
    deliveries_by_state: dict[str, int]
    failing_deliveries_by_target: dict[str, int]
    items_without_theme: int = 0
    read_at: datetime = field(default_factory=utcnow)


def _age(now: datetime, since: datetime | None) -> float | None:
    if since is None:
        return None
    if since.tzinfo is None:  # SQLite hands back naive UTC datetimes
        since = since.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - since).total_seconds())


def read_pipeline_state(session: Session) -> PipelineState:
    """Queue depths, oldest waits, delivery states and failures per target, in a handful of grouped queries."""
    now = utcnow()
    embedding = session.execute(select(func.count(), func.min(FeedbackItem.received_at))
                                .where(FeedbackItem.embedding.is_(None))).one()
    due = or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now)
    deliveries = session.execute(select(func.count(), func.min(Delivery.created_at))
                                 .where(Delivery.state.in_(RETRYABLE_STATES), due)).one()
    replies = session.execute(select(func.count(), func.min(LoopReply.created_at))
                              .where(LoopReply.state.in_(RETRYABLE_STATES))).one()
    by_state = {str(state): int(count) for state, count in
                session.execute(select(Delivery.state, func.count()).group_by(Delivery.state))}
    failing = {str(target): int(count) for target, count in session.execute(
        select(Delivery.target_type, func.count()).where(Delivery.consecutive_failures > 0)
        .group_by(Delivery.target_type))}
    without_theme = session.scalar(
        select(func.count()).select_from(FeedbackItem)
        .outerjoin(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)
        .where(ThemeMembership.item_id.is_(None), FeedbackItem.embedding.is_not(None))) or 0
    queues = {name: QueueState(int(count), _age(now, oldest)) for name, (count, oldest) in
              (("embedding", embedding), ("deliveries", deliveries), ("replies", replies))}
    return PipelineState(queues=queues, deliveries_by_state=by_state, failing_deliveries_by_target=failing,
                         items_without_theme=int(without_theme), read_at=now)


def check_dependencies(loop: FeedbackLoop) -> dict[str, str]:
    """Each service feedbackloop needs, with "ok", "not configured" or why it is unreachable."""
    checks = {}
    try:
        with loop.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError as error:
        checks["database"] = f"unreachable: {type(error).__name__}"
    if loop.settings.broker_url is None:
        checks["broker"] = "not configured"
    else:
        from core.tasks.broker import broker_state  # kombu is imported only where a broker is configured

        checks["broker"] = broker_state(loop.settings.broker_url, loop.settings.broker_queue_prefix)
    return checks
