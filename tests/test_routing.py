"""Routing: one ticket per theme and target, failures recorded and retried, updates as a theme grows."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from core import hookimpl
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import Delivery
from core.routing.outbox import DeliveryPolicy
from core.routing.plan import decide, route
from core.themes.build import embed_pending, recluster
from core.types import DeliveryRequest, DeliveryResult, ItemDraft, TargetType
from tests.support.loops import make_loop


class FlakyTarget:
    def __init__(self) -> None:
        self.fail = True
        self.calls: list[DeliveryRequest] = []

    def deliver(self, request: DeliveryRequest) -> DeliveryResult:
        self.calls.append(request)
        if self.fail:
            raise ConnectionError("tracker down")
        return DeliveryResult(external_ref=request.existing_ref or f"T-{len(self.calls)}", url="http://t/1")

    @hookimpl
    def register_target_types(self, register) -> None:  # type: ignore[no-untyped-def]
        register(TargetType(name="flaky", description="fails until told not to", deliver=self.deliver))


def add(loop: FeedbackLoop, texts: list[str]) -> None:
    with loop.session() as session:
        ingest(loop, session, [ItemDraft(text=t) for t in texts])
        embed_pending(loop, session)
        recluster(loop, session)


NO_BACKOFF = DeliveryPolicy(backoff_base_s=0, breaker_threshold=100)


def test_failures_are_recorded_then_retried_and_growth_is_updated(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[default]\nowner = "ops"\ntarget = "flaky"\n')
    loop = make_loop(f"sqlite:///{tmp_path / 'r.db'}", rules_file=rules)
    target = FlakyTarget()
    loop.pm.register(target)
    add(loop, [f"export to excel broken {i}" for i in range(6)])
    assert route(loop, NO_BACKOFF).failed == 1
    with loop.session() as session:
        delivery = session.scalars(select(Delivery)).one()
        assert delivery.state == "failed" and "tracker down" in (delivery.last_error or "")
    target.fail = False
    assert route(loop, NO_BACKOFF).sent == 1
    assert route(loop, NO_BACKOFF).sent == 0  # nothing new: no second ticket, no update
    add(loop, [f"export to excel broken again {i}" for i in range(3)])
    report = route(loop, NO_BACKOFF)
    assert (report.sent, report.updated) == (0, 1)
    assert target.calls[-1].existing_ref == "T-2" and target.calls[-1].theme.volume == 9
    with loop.session() as session:
        delivery = session.scalars(select(Delivery)).one()
        assert (delivery.state, delivery.attempts, delivery.delivered_volume) == ("sent", 3, 9)
        assert "[EMAIL]" not in delivery.body


def test_tickets_carry_redacted_text_only(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[default]\nowner = "ops"\n')
    loop = make_loop(f"sqlite:///{tmp_path / 'r.db'}", rules_file=rules)
    add(loop, [f"refund missing, write to me{i}@example.com or call +44 20 7946 095{i}" for i in range(6)])
    route(loop)
    with loop.session() as session:
        delivery = session.scalars(select(Delivery)).one()
    assert "@example.com" not in delivery.body + delivery.title and "7946" not in delivery.body
    assert "[EMAIL]" in delivery.body


def test_dry_run_shows_the_deciding_rule_and_changes_nothing(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "exports"\nowner = "data"\nkeywords_any = ["excel"]\n')
    loop = make_loop(f"sqlite:///{tmp_path / 'r.db'}", rules_file=rules)
    add(loop, [f"export to excel broken {i}" for i in range(6)] + [f"dark mode theme please {i}" for i in range(6)])
    with loop.session() as session:
        decisions = {d.theme.label: d.choice for d in decide(loop, session)}
        assert session.query(Delivery).count() == 0
    assert sorted(str(c.rule if c else None) for c in decisions.values()) == ["None", "exports"]
    report = route(loop)
    assert (report.decided, report.unrouted) == (1, 1)
