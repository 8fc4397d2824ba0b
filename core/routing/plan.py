"""Routing: pick an owner per theme (plugins, then the rules file), then deliver through an outbox.

The delivery row (the outbox entry) is written in the same transaction as the owner decision; sending
happens afterwards in ``core.routing.outbox``, and a delivery's idempotency key lets a target find a ticket it
already made.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import ConfigurationError
from core.loop import FeedbackLoop
from core.models import AuditEntry, Delivery, Owner, Theme
from core.routing.messages import ticket_message
from core.routing.outbox import DeliveryPolicy, RouteReport, send_due
from core.routing.suggest import Suggestion, suggest_owners
from core.themes.signals import theme_signals
from core.themes.views import theme_views
from core.types import ROUTABLE_STATUSES, OwnerChoice, ThemeView


@dataclass(frozen=True)
class RoutingDecision:
    theme: ThemeView
    choice: OwnerChoice | None
    suggestion: Suggestion | None = None


def routable_views(loop: FeedbackLoop, session: Session, theme_ids: Collection[int] | None = None) -> list[ThemeView]:
    """Active themes (all, or those of ``theme_ids``) with the signals rules can test: trend, spike score,
    item metadata."""
    views = [view for view in theme_views(session) if view.status in ROUTABLE_STATUSES
             and (theme_ids is None or view.id in theme_ids)]
    signals = theme_signals(session, [view.id for view in views], loop.settings)
    return [replace(view, **signals[view.id].as_fields()) if view.id in signals else view for view in views]


def decide(loop: FeedbackLoop, session: Session, suggest: bool = False,
           theme_ids: Collection[int] | None = None) -> list[RoutingDecision]:
    """Who would get each active theme, and which rule decided; changes nothing (the dry run).

    With ``suggest``, a theme no rule matches gets the owner of the most similar themes routed before.
    """
    decisions = [RoutingDecision(view, loop.pm.hook.choose_owner(theme=view, settings=loop.settings))
                 for view in routable_views(loop, session, theme_ids)]
    if not suggest:
        return decisions
    unmatched = [decision.theme.id for decision in decisions if decision.choice is None]
    suggestions = suggest_owners(session, unmatched) if unmatched else {}
    return [replace(decision, suggestion=suggestions.get(decision.theme.id)) for decision in decisions]


def ensure_owner(session: Session, name: str) -> Owner:
    owner = session.scalar(select(Owner).where(Owner.name == name))
    if owner is None:
        owner = Owner(name=name)
        session.add(owner)
        session.flush()
    return owner


def plan_deliveries(loop: FeedbackLoop, session: Session, theme_ids: Collection[int] | None = None) -> RouteReport:
    """Assign owners and write outbox rows (for every active theme, or those of ``theme_ids``), in the
    caller's transaction."""
    report = RouteReport()
    for decision in decide(loop, session, theme_ids=theme_ids):
        if decision.choice is None:
            report.unrouted += 1
            continue
        choice = decision.choice
        if choice.target_type not in loop.target_types:
            raise ConfigurationError(f"rule {choice.rule!r} names target {choice.target_type!r}, which no plugin "
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
            message = ticket_message(decision.theme, loop.settings.public_url)
            session.add(Delivery(theme_id=theme.id, owner_id=owner.id, target_type=choice.target_type,
                                 idempotency_key=key, state="pending", title=message.title, body=message.body,
                                 options=dict(choice.target_options)))
        report.decided += 1
    return report


def send_deliveries(loop: FeedbackLoop, report: RouteReport | None = None,
                    policy: DeliveryPolicy | None = None) -> RouteReport:
    """Send what is due now (new tickets, retries whose backoff has passed, growth updates)."""
    return send_due(loop, policy, report)


def route(loop: FeedbackLoop, policy: DeliveryPolicy | None = None) -> RouteReport:
    with loop.session() as session:
        report = plan_deliveries(loop, session)
    return send_deliveries(loop, report, policy)
