"""The delivery worker: sends outbox rows to their targets, never losing one and never doubling one.

Each delivery goes through three short transactions: claim (count the attempt and schedule the next one
as if this one fails, so a worker killed mid-call still backs off), the call to the target outside any
transaction, then record the outcome. A crash between "the tracker made the ticket" and "we recorded it"
is harmless because every request carries the delivery's idempotency key and targets look the ticket up
by that key before creating one; growth updates carry an update key the same way.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from core.clock import aware, utcnow
from core.errors import Conflict
from core.loop import FeedbackLoop
from core.models import AuditEntry, Delivery, TargetCircuit
from core.routing.delivery_log import carried_items, log_failure, log_ticket
from core.routing.messages import ticket_message
from core.themes.views import theme_view
from core.types import DeliveryRequest, ThemeView

DUE_STATES = ("pending", "failed", "sent")
DELIVERY_STATES = ("pending", "sent", "failed", "dead")


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try: exponential backoff with jitter, when to give up, when to stop calling a target."""

    backoff_base_s: float = 30.0
    backoff_cap_s: float = 3600.0
    # Consecutive failures after which a delivery is parked as "dead" until someone retries it.
    max_failures: int = 12
    # Consecutive failures of one target instance that open its circuit, and how long it stays open.
    breaker_threshold: int = 5
    breaker_cooldown_s: float = 300.0


@dataclass
class RouteReport:
    decided: int = 0
    unrouted: int = 0
    sent: int = 0
    updated: int = 0
    failed: int = 0
    deferred: int = 0
    suggestions: list[str] = field(default_factory=list)


class DeliveryError(Conflict):
    """A request about deliveries that cannot be done in the state they are in."""


def backoff_delay(policy: DeliveryPolicy, failures: int, rng: random.Random) -> float:
    """Exponential in the number of consecutive failures, capped, with jitter so retries do not stampede."""
    ceiling = min(policy.backoff_cap_s, policy.backoff_base_s * 2 ** max(0, failures - 1))
    return float(ceiling * rng.uniform(0.5, 1.0))


def circuit_key(target_type: str, options: dict[str, object]) -> str:
    """One breaker per target instance (its server or URL), not per project or ticket."""
    instance = str(options.get("url") or options.get("server") or options.get("host") or "")
    return f"{target_type}:{hashlib.sha256(instance.encode()).hexdigest()[:16]}"


def update_key(delivery: Delivery, volume: int) -> str:
    return f"{delivery.idempotency_key}:volume-{volume}"


def send_due(loop: FeedbackLoop, policy: DeliveryPolicy | None = None, report: RouteReport | None = None,
             rng: random.Random | None = None) -> RouteReport:
    """Send every delivery that is due: new tickets, retries, and updates for themes that grew."""
    policy = policy or DeliveryPolicy(backoff_base_s=loop.settings.delivery_backoff_s)
    report = report or RouteReport()
    rng = rng or random.Random()
    now = utcnow()
    with loop.session() as session:
        delivery_ids = list(session.scalars(
            select(Delivery.id).where(Delivery.state.in_(DUE_STATES), _is_due(now)).order_by(Delivery.id)
        ))
    for delivery_id in delivery_ids:
        send_one(loop, delivery_id, policy, report, rng)
    return report


def send_one(loop: FeedbackLoop, delivery_id: int, policy: DeliveryPolicy, report: RouteReport,
             rng: random.Random) -> None:
    claimed = _claim(loop, delivery_id, policy, report, rng)
    if claimed is None:
        return
    request, view, target_type = claimed
    target = loop.target_types.get(target_type)
    fields = {"delivery_id": delivery_id, "theme_id": view.id, "target_type": target_type}
    try:
        if target is None:
            raise LookupError(f"no plugin provides target type {target_type!r} any more")
        result = target.deliver(request)
    except Exception as error:  # a target's failure is recorded; it must not stop the others
        _record_failure(loop, delivery_id, f"{type(error).__name__}: {error}"[:2000], policy, report, rng)
        log_failure(fields, f"{type(error).__name__}: {error}")
        return
    with loop.session() as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            return
        created = delivery.external_ref is None
        if created:
            report.sent += 1
        else:
            report.updated += 1
        carried = carried_items(session, delivery.theme_id, aware(delivery.sent_at))
        delivery.sent_at = utcnow()
        delivery.state = "sent"
        delivery.external_ref = result.external_ref
        delivery.url = result.url or delivery.url
        delivery.title, delivery.body = request.title, request.body
        delivery.delivered_volume = max(delivery.delivered_volume, view.volume)
        delivery.last_error = None
        delivery.consecutive_failures = 0
        delivery.next_attempt_at = None
        circuit = session.get(TargetCircuit, circuit_key(delivery.target_type, dict(delivery.options or {})))
        if circuit is not None:
            circuit.consecutive_failures, circuit.opened_until, circuit.last_error = 0, None, None
    log_ticket(created, {**fields, "external_ref": result.external_ref, "volume": view.volume}, carried)


def _claim(loop: FeedbackLoop, delivery_id: int, policy: DeliveryPolicy, report: RouteReport,
           rng: random.Random) -> tuple[DeliveryRequest, ThemeView, str] | None:
    now = utcnow()
    with loop.session() as session:
        # The claim itself decides who sends: on PostgreSQL the row is locked, one that another worker is
        # claiming right now is skipped, and once that claim commits its pessimistic next attempt makes the
        # row not due for everyone else (SQLite ignores the lock: one writer there, and one worker).
        delivery = session.scalar(
            select(Delivery).where(Delivery.id == delivery_id, Delivery.state.in_(DUE_STATES), _is_due(now))
            .with_for_update(skip_locked=True, key_share=True)
        )
        if delivery is None:
            return None
        view = theme_view(session, delivery.theme)
        is_update = delivery.external_ref is not None
        if is_update and view.volume <= delivery.delivered_volume:
            if delivery.state == "failed":  # an update that failed and is no longer needed
                delivery.state, delivery.next_attempt_at = "sent", None
            return None
        options = dict(delivery.options or {})
        circuit = session.get(TargetCircuit, circuit_key(delivery.target_type, options))
        opened_until = aware(circuit.opened_until) if circuit is not None else None
        if opened_until is not None and opened_until > now:
            delivery.next_attempt_at = opened_until
            report.deferred += 1
            return None
        message = ticket_message(view, loop.settings.public_url)
        request = DeliveryRequest(
            theme=view, owner=delivery.owner.name if delivery.owner else "",
            options=options, title=message.title, body=message.body, link=message.link,
            idempotency_key=delivery.idempotency_key, existing_ref=delivery.external_ref,
            update_key=update_key(delivery, view.volume) if is_update else None, settings=loop.settings,
        )
        delivery.attempts += 1
        # Pessimistic schedule: if this worker dies during the call, the next one waits as after a failure.
        delay = backoff_delay(policy, delivery.consecutive_failures + 1, rng)
        delivery.next_attempt_at = now + timedelta(seconds=delay)
    return request, view, delivery.target_type


def _is_due(now: datetime) -> ColumnElement[bool]:
    return or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now)


def _record_failure(loop: FeedbackLoop, delivery_id: int, error: str, policy: DeliveryPolicy, report: RouteReport,
                    rng: random.Random) -> None:
    report.failed += 1
    now = utcnow()
    with loop.session() as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            return
        delivery.consecutive_failures += 1
        delivery.last_error = error
        if delivery.consecutive_failures >= policy.max_failures:
            delivery.state, delivery.next_attempt_at = "dead", None
        else:
            delivery.state = "failed"
            delay = backoff_delay(policy, delivery.consecutive_failures, rng)
            delivery.next_attempt_at = now + timedelta(seconds=delay)
        key = circuit_key(delivery.target_type, dict(delivery.options or {}))
        circuit = session.get(TargetCircuit, key)
        if circuit is None:
            circuit = TargetCircuit(key=key, consecutive_failures=0)
            session.add(circuit)
        circuit.consecutive_failures += 1
        circuit.last_error = error
        if circuit.consecutive_failures >= policy.breaker_threshold:
            circuit.opened_until = now + timedelta(seconds=policy.breaker_cooldown_s)


def list_deliveries(session: Session, state: str | None = None, limit: int = 100) -> list[Delivery]:
    if state is not None and state not in DELIVERY_STATES:
        raise DeliveryError(f"state {state!r} is not one of {list(DELIVERY_STATES)}", status_code=422)
    query = select(Delivery).order_by(Delivery.id).limit(limit)
    if state is not None:
        query = query.where(Delivery.state == state)
    return list(session.scalars(query))


def retry_delivery(session: Session, delivery_id: int, actor: str) -> Delivery:
    """Make a failed or dead delivery due now, with a fresh failure count (audited)."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise DeliveryError(f"no delivery with id {delivery_id}", status_code=404)
    if delivery.state not in ("failed", "dead"):
        raise DeliveryError(f"delivery {delivery_id} is {delivery.state!r}; only failed or dead ones can be retried")
    delivery.state = "pending" if delivery.external_ref is None else "failed"
    delivery.next_attempt_at = None
    delivery.consecutive_failures = 0
    session.add(AuditEntry(actor=actor, action="retry_delivery", entity_type="delivery",
                           entity_id=str(delivery.id), details={"last_error": delivery.last_error}))
    return delivery
