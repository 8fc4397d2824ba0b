"""Tracker status back to the theme: Jira webhooks and polling (Redmine) map onto theme statuses.

A ticket's status name is matched case-insensitively against the target's ``status_map`` option
(tracker status -> theme status), then against common tracker vocabularies. Statuses that say nothing
about progress ("Open", "To Do", "New") change nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.clock import aware, utcnow
from core.errors import ConfigurationError, NotFound
from core.loop import FeedbackLoop
from core.models import AuditEntry, Delivery
from core.secrets import env_secret
from core.themes.review import update_theme
from core.types import WebhookRequest

COMMON_STATUSES = {
    "planned": "planned", "selected for development": "planned", "accepted": "planned", "approved": "planned",
    "in progress": "in_progress", "in review": "in_progress", "in development": "in_progress",
    "in_progress": "in_progress", "feedback": "in_progress",
    "done": "done", "closed": "done", "resolved": "done", "fixed": "done", "complete": "done",
    "completed": "done", "released": "done", "shipped": "done",
    "declined": "declined", "rejected": "declined", "won't do": "declined", "won't fix": "declined",
    "wontfix": "declined", "cancelled": "declined", "canceled": "declined", "duplicate": "declined",
}


def theme_status_for(tracker_status: str, options: Mapping[str, Any] | None = None) -> str | None:
    wanted = tracker_status.strip().lower()
    custom = {str(k).lower(): str(v) for k, v in dict((options or {}).get("status_map") or {}).items()}
    return custom.get(wanted) or COMMON_STATUSES.get(wanted)


def apply_tracker_status(loop: FeedbackLoop, session: Session, delivery: Delivery, tracker_status: str,
                         source: str) -> str | None:
    """Record the ticket's status and move its theme; returns the theme's new status, if it changed."""
    delivery.status_checked_at = utcnow()
    if delivery.external_status == tracker_status:
        return None
    previous = delivery.external_status
    delivery.external_status = tracker_status
    session.add(AuditEntry(actor=f"tracker:{delivery.target_type}", action="tracker_status",
                           entity_type="delivery", entity_id=str(delivery.id),
                           details={"ticket": delivery.external_ref, "from": previous, "to": tracker_status,
                                    "via": source}))
    new_status = theme_status_for(tracker_status, delivery.options)
    if new_status is None or new_status == delivery.theme.status:
        return None
    update_theme(loop, session, delivery.theme_id, actor=f"tracker:{delivery.target_type}", status=new_status)
    return new_status


def find_delivery(session: Session, target_types: tuple[str, ...], refs: tuple[str, ...]) -> Delivery | None:
    """The delivery whose ticket is any of ``refs`` (a tracker may name an issue by key or by id)."""
    return session.scalar(select(Delivery).where(Delivery.target_type.in_(target_types))
                          .where(Delivery.external_ref.in_(refs)).order_by(Delivery.id).limit(1))


def poll_statuses(loop: FeedbackLoop, min_interval_s: float = 60.0) -> int:
    """Read each ticket's status from targets that can tell it; returns how many themes moved."""
    readers = {name: target.read_status for name, target in loop.target_types.items() if target.read_status}
    if not readers:
        return 0
    cutoff = utcnow() - timedelta(seconds=min_interval_s)
    with loop.session() as session:
        due = session.execute(
            select(Delivery.id, Delivery.target_type, Delivery.options, Delivery.external_ref)
            .where(Delivery.target_type.in_(list(readers))).where(Delivery.external_ref.is_not(None))
            .where(or_(Delivery.status_checked_at.is_(None), Delivery.status_checked_at <= cutoff))
        ).all()
    moved = 0
    for delivery_id, target_type, options, ref in due:
        try:
            tracker_status = readers[target_type](dict(options or {}), ref)
        except Exception:  # an unreachable tracker is tried again next round; delivery errors are its own
            continue
        with loop.session() as session:
            delivery = session.get(Delivery, delivery_id)
            if delivery is None:
                continue
            if tracker_status is None:
                delivery.status_checked_at = aware(utcnow())
                continue
            if apply_tracker_status(loop, session, delivery, tracker_status, source="poll"):
                moved += 1
    return moved


@dataclass(frozen=True)
class StatusWebhookOutcome:
    ignored: str | None = None
    theme_id: int | None = None
    tracker_status: str | None = None
    theme_status: str | None = None
    changed: bool = False


def status_webhook_secret_env(target_type: str) -> str:
    return f"FEEDBACKLOOP_{target_type.upper()}_WEBHOOK_SECRET"


def receive_status_webhook(loop: FeedbackLoop, target_type: str, headers: Mapping[str, str],
                           body: bytes) -> StatusWebhookOutcome:
    """A tracker's status webhook: verified and read by its target plugin, then applied to the theme.

    The secret is ``FEEDBACKLOOP_<TYPE>_WEBHOOK_SECRET``; without it everything is refused (503), because an
    unsigned endpoint would let anyone close themes.
    """
    target = loop.target_types.get(target_type)
    if target is None or target.status_webhook is None:
        raise NotFound(f"no tracker {target_type!r} sends status webhooks here")
    secret_env = status_webhook_secret_env(target_type)
    secret = env_secret(secret_env)
    if secret is None:
        raise ConfigurationError(f"set {secret_env} to accept {target_type} webhooks")
    event = target.status_webhook(WebhookRequest(channel_name=target_type, body=body, options={}, secret=secret,
                                                 headers={k.lower(): v for k, v in headers.items()}))
    if event.ignored is not None or event.status is None:
        return StatusWebhookOutcome(ignored=event.ignored or "the event names no status")
    with loop.session() as session:
        delivery = find_delivery(session, (target_type,), event.refs)
        if delivery is None:
            return StatusWebhookOutcome(ignored=f"no theme has issue {event.refs[0] if event.refs else '?'}")
        moved = apply_tracker_status(loop, session, delivery, event.status, source="webhook")
        return StatusWebhookOutcome(theme_id=delivery.theme_id, tracker_status=event.status,
                                    theme_status=delivery.theme.status, changed=moved is not None)
