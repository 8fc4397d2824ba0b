"""Read-side queries shared by the API and the dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from core.models import Delivery, FeedbackItem, Owner, ThemeMembership


@dataclass(frozen=True)
class ItemFilter:
    channel: str | None = None
    kind: str | None = None
    theme_id: int | None = None
    contains: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(query: Select[tuple[FeedbackItem]], where: ItemFilter) -> Select[tuple[FeedbackItem]]:
    if where.channel:
        query = query.where(FeedbackItem.channel == where.channel)
    if where.kind:
        query = query.where(FeedbackItem.kind == where.kind)
    if where.theme_id is not None:
        query = query.join(ThemeMembership).where(ThemeMembership.theme_id == where.theme_id)
    if where.contains:
        # autoescape: "%", "_" and the escape character are the searched text, not LIKE wildcards.
        query = query.where(FeedbackItem.text_redacted.icontains(where.contains, autoescape=True))
    if where.since:
        query = query.where(FeedbackItem.created_at >= where.since)
    if where.until:
        query = query.where(FeedbackItem.created_at < where.until)
    return query


def list_items(session: Session, where: ItemFilter, limit: int, offset: int) -> tuple[int, list[FeedbackItem]]:
    base = _filtered(select(FeedbackItem), where)
    total = int(session.scalar(select(func.count()).select_from(base.subquery())) or 0)
    items: list[FeedbackItem] = list(session.scalars(
        base.options(selectinload(FeedbackItem.membership))
        .order_by(FeedbackItem.created_at.desc(), FeedbackItem.id.desc()).limit(limit).offset(offset)
    ))
    return total, items


def inboxes(session: Session) -> dict[str, list[Delivery]]:
    """Each owner's built-in inbox: their deliveries to the ``inbox`` target, newest first."""
    rows = session.scalars(
        select(Delivery).join(Owner, Owner.id == Delivery.owner_id).where(Delivery.target_type == "inbox")
        .order_by(Owner.name, Delivery.updated_at.desc())
    ).all()
    by_owner: dict[str, list[Delivery]] = {}
    for delivery in rows:
        by_owner.setdefault(delivery.owner.name if delivery.owner else "-", []).append(delivery)
    return by_owner
