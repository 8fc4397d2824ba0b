"""Routing: pick an owner per theme (plugins, then the rules file), then deliver through an outbox.

The delivery row (the outbox entry) is written in the same transaction as the owner decision; sending
happens afterwards, and a delivery's idempotency key lets a target find a ticket it already made.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.loop import FeedbackLoop
from core.models import AuditEntry, Delivery, Owner, Theme
from core.themes import theme_view, theme_views
from core.types import DeliveryRequest, OwnerChoice, ThemeView

ROUTABLE_STATUSES = ("new", "triaged", "planned", "in_progress")


@dataclass(frozen=True)
class RoutingDecision:
    theme: ThemeView
    choice: OwnerChoice | None


@dataclass
class RouteReport:
    decided: int = 0
    unrouted: int = 0
    sent: int = 0
    updated: int = 0
    failed: int = 0


def decide(loop: FeedbackLoop, session: Session) -> list[RoutingDecision]:
    """Who would get each active theme, and which rule decided; changes nothing (the dry run)."""
    return [
        RoutingDecision(view, loop.pm.hook.choose_owner(theme=view, settings=loop.settings))
        for view in theme_views(session)
        if view.status in ROUTABLE_STATUSES
    ]


def ensure_owner(session: Session, name: str) -> Owner:
    owner = session.scalar(select(Owner).where(Owner.name == name))
    if owner is None:
        owner = Owner(name=name)
        session.add(owner)
        session.flush()
    return owner


def render(loop: FeedbackLoop, theme: ThemeView) -> tuple[str, str]:
    """A ticket's title and body: label, metrics, redacted quotes, and a link back to the theme."""
    title = f"[feedbackloop] {theme.label} ({theme.volume} items)"
    quotes = "\n".join(f'> "{quote}"' for quote in theme.quotes[:3])
    body = (
        f"Theme: {theme.label}\n"
        f"Keywords: {', '.join(theme.keywords[:8])}\n"
        f"Volume: {theme.volume} items, {theme.share_of_voice:.1%} of all feedback\n"
        f"Mean sentiment: {theme.mean_sentiment:+.2f}\n"
        f"Kinds: {', '.join(f'{k} {n}' for k, n in sorted(theme.kinds.items()))}\n\n"
        f"What people said:\n{quotes}\n\n"
        f"{loop.settings.public_url.rstrip('/')}/themes/{theme.id}"
    )
    return title, body


def plan_deliveries(loop: FeedbackLoop, session: Session) -> RouteReport:
    """Assign owners and write outbox rows, in the caller's transaction."""
    report = RouteReport()
    for decision in decide(loop, session):
        if decision.choice is None:
            report.unrouted += 1
            continue
        choice = decision.choice
        if choice.target_type not in loop.target_types:
            raise ValueError(f"rule {choice.rule!r} names target {choice.target_type!r}, which no plugin "
                             f"provides (known: {sorted(loop.target_types)})")
        theme = session.get(Theme, decision.theme.id)
        assert theme is not None
        owner = ensure_owner(session, choice.owner)
        if theme.owner_id is None:
            theme.owner_id = owner.id
            session.add(AuditEntry(actor="router", action="assign_owner", entity_type="theme",
                                   entity_id=str(theme.id),
                                   details={"owner": owner.name, "rule": choice.rule}))
        key = f"theme-{theme.id}:{choice.target_type}:{owner.name}"
        if session.scalar(select(Delivery).where(Delivery.idempotency_key == key)) is None:
            title, body = render(loop, decision.theme)
            session.add(Delivery(theme_id=theme.id, owner_id=owner.id, target_type=choice.target_type,
                                 idempotency_key=key, state="pending", title=title, body=body,
                                 options=dict(choice.target_options)))
        report.decided += 1
    return report


def send_deliveries(loop: FeedbackLoop, report: RouteReport | None = None) -> RouteReport:
    """Send pending deliveries and growth updates; each in its own transaction, failures recorded."""
    report = report or RouteReport()
    with loop.session() as session:
        delivery_ids = list(session.scalars(
            select(Delivery.id).where(Delivery.state.in_(("pending", "failed", "sent"))).order_by(Delivery.id)
        ))
    for delivery_id in delivery_ids:
        with loop.session() as session:
            delivery = session.get(Delivery, delivery_id)
            assert delivery is not None
            view = theme_view(session, delivery.theme)
            is_update = delivery.state == "sent"
            if is_update and view.volume <= delivery.delivered_volume:
                continue
            title, body = render(loop, view)
            target = loop.target_types[delivery.target_type]
            request = DeliveryRequest(theme=view, owner=delivery.owner.name if delivery.owner else "",
                                      options=dict(delivery.options or {}), title=title, body=body,
                                      idempotency_key=delivery.idempotency_key,
                                      existing_ref=delivery.external_ref)
            delivery.attempts += 1
            try:
                result = target.deliver(request)
            except Exception as error:  # a target's failure must not stop the others
                delivery.state = "failed"
                delivery.last_error = f"{type(error).__name__}: {error}"
                report.failed += 1
                continue
            delivery.state = "sent"
            delivery.external_ref = result.external_ref
            delivery.url = result.url
            delivery.title, delivery.body = title, body
            delivery.delivered_volume = view.volume
            delivery.last_error = None
            if is_update:
                report.updated += 1
            else:
                report.sent += 1
    return report


def route(loop: FeedbackLoop) -> RouteReport:
    with loop.session() as session:
        report = plan_deliveries(loop, session)
    return send_deliveries(loop, report)
