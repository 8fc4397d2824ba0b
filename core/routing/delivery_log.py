"""The log line of a ticket created or updated: which items, and the requests that brought them, it carries.

A delivery carries the theme's items that joined it since the target last created or updated the ticket
(``deliveries.sent_at``; the first send: all of them). The line names the newest ``MAX_ITEMS_PER_LINE`` of them
with their request ids and says how many there are in all, so a big theme's first ticket is still one short
line. A re-clustering re-makes memberships, so the next update names the theme's items again: more than is new,
never less.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.logs import MAX_ITEMS_PER_LINE
from core.models import FeedbackItem, ThemeMembership

log = logging.getLogger(__name__)


def carried_items(session: Session, theme_id: int, since: datetime | None) -> tuple[int, list[dict[str, Any]]]:
    """(how many items joined the theme after ``since``, the newest of them as ``{item_id, request_id}``)."""
    joined = [ThemeMembership.theme_id == theme_id]
    if since is not None:
        joined.append(ThemeMembership.created_at > since)
    total = int(session.scalar(select(func.count()).select_from(ThemeMembership).where(*joined)) or 0)
    newest = session.execute(
        select(FeedbackItem.id, FeedbackItem.request_id)
        .join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id).where(*joined)
        .order_by(FeedbackItem.id.desc()).limit(MAX_ITEMS_PER_LINE)
    ).all()
    return total, [{"item_id": item_id, "request_id": request_id} for item_id, request_id in newest]


def log_ticket(created: bool, fields: dict[str, Any], carried: tuple[int, list[dict[str, Any]]]) -> None:
    total, items = carried
    log.info("ticket.created" if created else "ticket.updated", extra={**fields, "items_total": total,
                                                                       "items": items})


def log_failure(fields: dict[str, Any], error: str) -> None:
    log.warning("delivery.failed", extra={**fields, "error": error})
