"""Spike notices: when a theme's spike score crosses a ``[[spike]]`` rule's threshold, tell its owner now.

Checked by every worker round (seconds), not by the batch routing run. A notice is rate-limited per
theme and rule by the rule's cooldown; the alert row is written before the call, so a crash can lose a
notice but never repeat one within the cooldown, and a failed call is tried again next round.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.clock import aware, utcnow
from core.loop import FeedbackLoop
from core.models import Delivery, SpikeAlert, Theme
from core.routing.messages import spike_message
from core.routing.rules import RulesError, SpikeRule, load_rules
from core.themes.signals import spike_scores, theme_signals
from core.themes.views import theme_view
from core.types import DeliveryRequest


def _rules_the_rows_allow(session: Session,
                          counted: dict[int, list[SpikeRule]]) -> dict[int, tuple[Theme, list[SpikeRule]]]:
    """{theme id: (theme, the rules its counts reach and its row does not rule out)}: a theme's view and
    signals read all its items, so the label, keyword and status conditions are tested on its row first."""
    wanted = sorted(theme_id for theme_id, rules in counted.items() if rules)
    themes = session.scalars(select(Theme).where(Theme.id.in_(wanted))).all() if wanted else []
    allowed = {theme.id: (theme, [rule for rule in counted[theme.id]
                                  if rule.may_match(theme.label, theme.keywords or [], theme.status)])
               for theme in themes}
    return {theme_id: entry for theme_id, entry in allowed.items() if entry[1]}


def _cooling_down(session: Session, theme_id: int, rule: SpikeRule) -> bool:
    since = utcnow() - timedelta(minutes=rule.cooldown_minutes)
    last = session.scalar(select(SpikeAlert.created_at).where(SpikeAlert.theme_id == theme_id)
                          .where(SpikeAlert.rule == rule.name).where(SpikeAlert.state != "failed")
                          .order_by(SpikeAlert.created_at.desc()).limit(1))
    moment = aware(last)
    return moment is not None and moment >= since


def check_spikes(loop: FeedbackLoop) -> int:
    """Send a notice for each theme whose spike score crossed a spike rule's threshold; returns how many."""
    if loop.settings.rules_file is None:
        return 0
    try:
        spike_rules = load_rules(loop.settings.rules_file, loop.settings).spikes
    except RulesError:
        return 0  # routing reports a broken rules file; the worker must keep delivering meanwhile
    if not spike_rules:
        return 0
    pending: list[tuple[int, DeliveryRequest, str]] = []
    with loop.session() as session:
        # Counts in SQL first: a theme's signals and view read all its items, and on every pass most of the
        # recently active themes are far below every rule (a score never exceeds the window's count).
        scores = spike_scores(session, at_least=min(max(rule.min_recent, math.ceil(rule.threshold), 1)
                                                    for rule in spike_rules))
        rules_of = _rules_the_rows_allow(session, {
            theme_id: [rule for rule in spike_rules if score >= rule.threshold and recent >= rule.min_recent]
            for theme_id, (recent, score) in scores.items()})
        signals = theme_signals(session, sorted(rules_of))
        for theme_id, (theme, rules) in sorted(rules_of.items()):
            score = signals[theme_id].anomaly_score or 0.0
            rising = [rule for rule in rules if not _cooling_down(session, theme_id, rule)]
            if not rising:
                continue
            view = replace(theme_view(session, theme), **signals[theme_id].as_fields())
            for rule in rising:
                if not rule.matches(view):
                    continue
                alert = SpikeAlert(theme_id=theme_id, rule=rule.name, score=score, state="sending")
                session.add(alert)
                session.flush()
                ticket = session.scalar(select(Delivery.external_ref).where(Delivery.theme_id == theme_id)
                                        .where(Delivery.target_type == rule.target).limit(1))
                message = spike_message(view, signals[theme_id], loop.settings.public_url)
                pending.append((alert.id, DeliveryRequest(
                    theme=view, owner=rule.owner, options=dict(rule.target_options), title=message.title,
                    body=message.body, link=message.link, settings=loop.settings,
                    idempotency_key=f"spike-{alert.id}", existing_ref=ticket, event="spike"), rule.target))
    for alert_id, request, target_type in pending:
        _send(loop, alert_id, request, target_type)
    return len(pending)


def deliver_notice(loop: FeedbackLoop, request: DeliveryRequest, target_type: str) -> str | None:
    """Send a one-off notice (a spike, a community's decline) outside any transaction; the error, or None."""
    try:
        target = loop.target_types.get(target_type)
        if target is None:
            raise LookupError(f"no plugin provides target type {target_type!r}")
        target.deliver(request)
    except Exception as failure:  # any target's failure: the caller records it, the next round tries again
        return f"{type(failure).__name__}: {failure}"[:2000]
    return None


def _send(loop: FeedbackLoop, alert_id: int, request: DeliveryRequest, target_type: str) -> None:
    error = deliver_notice(loop, request, target_type)
    with loop.session() as session:
        alert = session.get(SpikeAlert, alert_id)
        if alert is not None:
            alert.state, alert.last_error = ("failed", error) if error else ("sent", None)
