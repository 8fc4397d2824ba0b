"""Routing from the outside: failed deliveries visible and retryable (API and CLI), backoff, giving up,
the circuit breaker, the rules API, and the dry run with suggestions on the demo data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from api.app import create_app
from core import hookimpl
from core.auth.api_keys import create_api_key
from core.cli.app import app
from core.clock import aware, utcnow
from core.demo import DEMO_RULES, demo_drafts
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import Delivery, FeedbackItem, Owner, TargetCircuit, Theme, ThemeMembership
from core.routing.outbox import DeliveryPolicy, backoff_delay, send_due
from core.routing.plan import decide, plan_deliveries, route
from core.settings import get_settings
from core.themes.build import embed_pending, recluster
from core.types import DeliveryRequest, DeliveryResult, TargetType
from tests.support.loops import make_loop

runner = CliRunner()


class BrokenTarget:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = True

    def deliver(self, request: DeliveryRequest) -> DeliveryResult:
        self.calls += 1
        if self.fail:
            raise TimeoutError("tracker timed out")
        return DeliveryResult(external_ref=f"T-{request.theme.id}")

    @hookimpl
    def register_target_types(self, register: Any) -> None:
        register(TargetType(name="broken", description="times out", deliver=self.deliver))


def themes_with_items(loop: FeedbackLoop, count: int) -> list[int]:
    ids = []
    with loop.session() as session:
        for index in range(count):
            theme = Theme(label=f"theme {index}", keywords=["x"], quotes=[], status="new")
            session.add(theme)
            session.flush()
            item = FeedbackItem(channel="api", external_id=f"i{index}", text_original="x", text_redacted="x",
                                metadata_json={})
            session.add(item)
            session.flush()
            session.add(ThemeMembership(item_id=item.id, theme_id=theme.id))
            ids.append(theme.id)
    return ids


@pytest.fixture
def broken(tmp_path: Path, database_url: str) -> Iterator[tuple[FeedbackLoop, BrokenTarget]]:
    """A target that fails until told not to, on SQLite and on PostgreSQL."""
    rules = tmp_path / "rules.toml"
    rules.write_text('[default]\nowner = "ops"\ntarget = "broken"\n')
    loop = make_loop(database_url, rules_file=rules)
    target = BrokenTarget()
    loop.pm.register(target)
    yield loop, target
    loop.close()


def test_backoff_grows_exponentially_with_jitter() -> None:
    import random

    policy = DeliveryPolicy(backoff_base_s=10, backoff_cap_s=100)
    rng = random.Random(1)
    delays = [backoff_delay(policy, failures, rng) for failures in (1, 2, 3, 4, 5, 6)]
    assert 5 <= delays[0] <= 10 and 10 <= delays[1] <= 20 and 20 <= delays[2] <= 40 and 40 <= delays[3] <= 80
    assert all(50 <= delay <= 100 for delay in delays[4:])  # capped
    assert len({round(backoff_delay(policy, 3, rng), 6) for _ in range(20)}) > 1  # jittered


def test_failed_delivery_waits_its_backoff_then_gives_up_visible_and_retryable(
        broken: tuple[FeedbackLoop, BrokenTarget]) -> None:
    loop, target = broken
    themes_with_items(loop, 1)
    assert route(loop, DeliveryPolicy(backoff_base_s=3600)).failed == 1
    assert send_due(loop).failed == 0 and target.calls == 1  # not due yet: the backoff holds
    with loop.session() as session:
        delivery = session.scalars(select(Delivery)).one()
        next_attempt = aware(delivery.next_attempt_at)
        assert next_attempt is not None and next_attempt > utcnow()
        delivery.next_attempt_at = utcnow()  # an hour later
    gives_up = DeliveryPolicy(backoff_base_s=0, max_failures=3, breaker_threshold=100)
    send_due(loop, gives_up)
    send_due(loop, gives_up)
    with loop.session() as session:
        delivery = session.scalars(select(Delivery)).one()
        assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == ("dead", 3, None)
    assert send_due(loop, gives_up).failed == 0  # dead deliveries wait for a person

    with TestClient(create_app(loop.settings, loop=loop)) as client:
        auth = {"Authorization": f"Bearer {loop.settings.admin_key}"}
        listed = client.get("/api/v1/deliveries", params={"state": "dead"}, headers=auth).json()
        assert [(d["state"], d["last_error"]) for d in listed] == [("dead", "TimeoutError: tracker timed out")]
        assert client.get("/api/v1/deliveries", params={"state": "lost"}, headers=auth).status_code == 422
        assert client.post("/api/v1/deliveries/999/retry", headers=auth).status_code == 404
        assert client.get("/api/v1/deliveries").status_code == 401
        retried = client.post(f"/api/v1/deliveries/{listed[0]['id']}/retry", headers=auth)
        assert retried.status_code == 200 and retried.json()["state"] == "pending"
        target.fail = False
        assert send_due(loop, gives_up).sent == 1
        again = client.post(f"/api/v1/deliveries/{listed[0]['id']}/retry", headers=auth)
        assert again.status_code == 409 and "only failed or dead" in again.json()["detail"]


def test_circuit_breaker_stops_calling_a_failing_target(broken: tuple[FeedbackLoop, BrokenTarget]) -> None:
    loop, target = broken
    themes_with_items(loop, 5)
    report = route(loop, DeliveryPolicy(backoff_base_s=0, breaker_threshold=2, breaker_cooldown_s=3600))
    assert (target.calls, report.failed, report.deferred) == (2, 2, 3)  # opened after two failures
    with loop.session() as session:
        circuit = session.scalars(select(TargetCircuit)).one()
        assert circuit.consecutive_failures == 2 and circuit.opened_until is not None
        circuit.opened_until = utcnow()  # an hour later, the cooldown is over: half-open
        for delivery in session.scalars(select(Delivery)):
            delivery.next_attempt_at = utcnow()
    target.fail = False
    assert send_due(loop, DeliveryPolicy(backoff_base_s=0)).sent == 5
    with loop.session() as session:
        assert session.scalars(select(TargetCircuit)).one().consecutive_failures == 0


def test_cli_lists_and_retries_failed_deliveries(broken: tuple[FeedbackLoop, BrokenTarget],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    loop, _ = broken
    themes_with_items(loop, 1)
    route(loop, DeliveryPolicy(backoff_base_s=3600))
    monkeypatch.setenv("FEEDBACKLOOP_DATABASE_URL", loop.settings.database_url)
    monkeypatch.setenv("FEEDBACKLOOP_LOAD_PLUGINS", "")
    monkeypatch.setenv("COLUMNS", "250")
    get_settings.cache_clear()
    try:
        listed = runner.invoke(app, ["deliveries", "list", "--state", "failed"])
        assert listed.exit_code == 0 and "tracker timed out" in listed.output
        assert runner.invoke(app, ["deliveries", "list", "--state", "bogus"]).exit_code == 2
        assert runner.invoke(app, ["deliveries", "retry"]).exit_code == 2
        assert runner.invoke(app, ["deliveries", "retry", "42"]).exit_code == 2
        retried = runner.invoke(app, ["deliveries", "retry", "--all-failed"])
        assert retried.exit_code == 0 and "1 deliveries due now" in retried.output
    finally:
        get_settings.cache_clear()
    with loop.session() as session:
        assert session.scalars(select(Delivery)).one().next_attempt_at is None


def test_rules_api_validates_and_never_loses_the_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    original = '[default]\nowner = "product"\n'
    rules.write_text(original)
    loop = make_loop(f"sqlite:///{tmp_path / 'rules.db'}", rules_file=rules)
    with loop.session() as session:
        viewer = create_api_key(session, "viewer", ["pm"])
    admin = {"Authorization": f"Bearer {loop.settings.admin_key}"}
    with TestClient(create_app(loop.settings, loop=loop)) as client:
        assert client.get("/api/v1/rules", headers=admin).json()["default"]["owner"] == "product"
        bad = client.put("/api/v1/rules", headers=admin,
                         json={"source": original + '\n[[rule]]\nname = "x"\nowner = "ops"\nkind = ["rant"]\n'})
        assert bad.status_code == 422 and bad.json()["detail"].startswith("rules line 4:")
        assert rules.read_text() == original
        checked = client.post("/api/v1/rules/validate", headers=admin, json={"source": '[[rule]]\nowner = 1\n'})
        assert checked.status_code == 422 and "'owner' is required" in checked.json()["detail"]
        new = original + '\n[[rule]]\nname = "cards"\nowner = "cards"\nkeywords_any = ["card"]\n'
        assert client.put("/api/v1/rules", headers={"Authorization": f"Bearer {viewer}"},
                          json={"source": new}).status_code == 403
        saved = client.put("/api/v1/rules", headers=admin, json={"source": new})
        assert saved.status_code == 200 and [r["name"] for r in saved.json()["rules"]] == ["cards"]
        assert rules.read_text() == new
        assert client.get("/api/v1/routing/dry-run", headers=admin).status_code == 200


def test_suggestion_from_the_most_similar_routed_themes(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "cards"\nowner = "cards"\nkeywords_any = ["card"]\n')
    loop = make_loop(f"sqlite:///{tmp_path / 's.db'}", rules_file=rules)
    ids = themes_with_items(loop, 4)
    vectors = [np.array([1, 0, 0], dtype=np.float32), np.array([0.9, 0.1, 0], dtype=np.float32),
               np.array([0, 1, 0], dtype=np.float32), np.array([0.95, 0.05, 0], dtype=np.float32)]
    with loop.session() as session:
        cards = Owner(name="cards")
        it = Owner(name="it")
        session.add_all([cards, it])
        session.flush()
        for theme_id, vector, owner in zip(ids, vectors, [cards, cards, it, None], strict=True):
            theme = session.get(Theme, theme_id)
            assert theme is not None
            theme.centroid = vector.tobytes()
            theme.owner_id = owner.id if owner else None
            theme.label = "Card declined" if owner is cards else f"other {theme_id}"
    with loop.session() as session:
        decisions = {decision.theme.id: decision for decision in decide(loop, session, suggest=True)}
    unmatched = decisions[ids[3]]
    assert unmatched.choice is None and unmatched.suggestion is not None
    assert unmatched.suggestion.owner == "cards" and 0.5 < unmatched.suggestion.confidence <= 1
    assert set(unmatched.suggestion.similar_theme_ids) == {ids[0], ids[1]}
    assert decisions[ids[2]].suggestion is not None and decisions[ids[2]].choice is None


def test_dry_run_on_demo_data_gives_every_theme_an_owner_and_its_rule(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    loop = make_loop(f"sqlite:///{tmp_path / 'demo.db'}", rules_file=DEMO_RULES)
    with loop.session() as session:
        ingest(loop, session, demo_drafts())
        embed_pending(loop, session)
        recluster(loop, session)
        decisions = decide(loop, session)
        plan_deliveries(loop, session)
    assert len(decisions) >= 10 and all(d.choice is not None and d.choice.rule for d in decisions)
    monkeypatch.setenv("FEEDBACKLOOP_DATABASE_URL", loop.settings.database_url)
    monkeypatch.setenv("FEEDBACKLOOP_LOAD_PLUGINS", "")
    monkeypatch.setenv("COLUMNS", "250")
    get_settings.cache_clear()
    try:
        shown = runner.invoke(app, ["route", "--dry-run", "--rules", str(DEMO_RULES)])
        assert shown.exit_code == 0, shown.output
        assert "(none)" not in shown.output and "no rule matched" not in shown.output
        assert shown.output.count("rule ") >= len(decisions)  # each row names its deciding rule
        bad = tmp_path / "bad.toml"
        bad.write_text('[default]\nowner = "product"\n\n[[rule]]\nname = "x"\nowner = "ops"\nmin_volume = "lots"\n')
        failed = runner.invoke(app, ["route", "--dry-run", "--rules", str(bad)])
        assert failed.exit_code == 2 and "line 4" in failed.output
        assert "'min_volume' must be an integer" in failed.output
    finally:
        get_settings.cache_clear()


def test_worker_command_runs_one_round(broken: tuple[FeedbackLoop, BrokenTarget],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    loop, target = broken
    themes_with_items(loop, 2)
    with loop.session() as session:
        plan_deliveries(loop, session)
    target.fail = False
    monkeypatch.setenv("FEEDBACKLOOP_DATABASE_URL", loop.settings.database_url)
    monkeypatch.setenv("FEEDBACKLOOP_LOAD_PLUGINS", "")
    monkeypatch.setenv("FEEDBACKLOOP_RULES_FILE", str(loop.settings.rules_file))
    get_settings.cache_clear()
    try:
        # The CLI builds its own plugin manager, which has no "broken" target: both fail, visibly.
        result = runner.invoke(app, ["deliveries", "work", "--once"])
        assert result.exit_code == 0 and "2 failed" in result.output, result.output
    finally:
        get_settings.cache_clear()
    with loop.session() as session:
        errors = {delivery.last_error for delivery in session.scalars(select(Delivery))}
    assert errors == {"LookupError: no plugin provides target type 'broken' any more"}
