"""``/metrics`` after real traffic (counters move, bounded labels, its own scope) and ``/readyz`` going
unready while the database is unreachable, then ready again by itself."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from core.auth.api_keys import create_api_key
from core.intake.channels import add_channel
from core.loop import FeedbackLoop
from core.models import Delivery, Theme
from plugins.generic_webhook import sign
from tests.support.loops import make_loop
from tests.support.tcp_proxy import tcp_proxy

SECRET = "form-secret-1234"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


@pytest.fixture
def scraper(loop: FeedbackLoop) -> dict[str, str]:
    with loop.session() as session:
        key = create_api_key(session, "prometheus", ["metrics"])
    return {"Authorization": f"Bearer {key}"}


def deliver(client: TestClient, channel: str, record: dict[str, object], secret: str = SECRET) -> int:
    body = json.dumps(record).encode()
    return client.post(f"/webhooks/{channel}", content=body,
                       headers={"X-Feedbackloop-Signature": sign(secret, body)}).status_code


def test_counters_move_with_traffic_and_labels_stay_bounded(client: TestClient, loop: FeedbackLoop,
                                                           scraper: dict[str, str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORM_SECRET", SECRET)
    with loop.session() as session:
        add_channel(loop, session, "form", "webhook", secret_env="FORM_SECRET")
    before = samples(client.get("/metrics", headers=scraper).text)
    assert before.get(("feedbackloop_webhook_deliveries_total", (("channel", "form"), ("outcome", "accepted")))) \
        is None
    assert deliver(client, "form", {"id": "1", "text": "Exports time out on big boards"}) == 202
    assert deliver(client, "form", {"id": "2", "text": "Dark mode please"}) == 202
    assert deliver(client, "form", {"id": "3", "text": "forged"}, secret="wrong-secret") == 401
    for made_up in ("nope-1", "nope-2"):
        assert deliver(client, made_up, {"id": "1", "text": "x"}) == 404
    assert client.get("/healthz").status_code == 200

    after = samples(client.get("/metrics", headers=scraper).text)
    webhooks = "feedbackloop_webhook_deliveries_total"
    assert after[(webhooks, (("channel", "form"), ("outcome", "accepted")))] == 2
    assert after[(webhooks, (("channel", "form"), ("outcome", "401")))] == 1
    # Channels that do not exist share one series: a stranger cannot make the scrape grow without end.
    assert after[(webhooks, (("channel", "unknown"), ("outcome", "404")))] == 2
    assert not any(dict(labels).get("channel", "").startswith("nope") for _, labels in after)
    latency = after[("feedbackloop_http_request_duration_seconds_count",
                     (("method", "POST"), ("route", "/webhooks/{channel}"), ("status", "202")))]
    assert latency == 2
    assert after[("feedbackloop_http_request_duration_seconds_count",
                  (("method", "GET"), ("route", "/healthz"), ("status", "200")))] == 1
    # Two items wait to be embedded: the queue the worker drains, read from the database.
    assert after[("feedbackloop_queue_depth", (("queue", "embedding"),))] == 2
    assert after[("feedbackloop_queue_oldest_seconds", (("queue", "embedding"),))] >= 0


def test_outbox_states_and_failures_per_target_are_reported(client: TestClient, loop: FeedbackLoop,
                                                            scraper: dict[str, str]) -> None:
    with loop.session() as session:
        theme = Theme(label="Exports time out", keywords=[], quotes=[])
        session.add(theme)
        session.flush()
        session.add_all([
            Delivery(theme_id=theme.id, target_type="jira", idempotency_key="a", state="sent"),
            Delivery(theme_id=theme.id, target_type="jira", idempotency_key="b", state="failed",
                     consecutive_failures=3),
            Delivery(theme_id=theme.id, target_type="redmine", idempotency_key="c", state="pending"),
        ])
    found = samples(client.get("/metrics", headers=scraper).text)
    assert {state: found[("feedbackloop_outbox_deliveries", (("state", state),))]
            for state in ("sent", "failed", "pending")} == {"sent": 1, "failed": 1, "pending": 1}
    assert found[("feedbackloop_failing_deliveries", (("target_type", "jira"),))] == 1
    assert ("feedbackloop_failing_deliveries", (("target_type", "redmine"),)) not in found
    assert found[("feedbackloop_queue_depth", (("queue", "deliveries"),))] == 2  # the pending and the failed one


def test_metrics_needs_its_own_scope(client: TestClient, loop: FeedbackLoop, scraper: dict[str, str],
                                     auth: dict[str, str]) -> None:
    assert client.get("/metrics").status_code == 401
    with loop.session() as session:
        reader = create_api_key(session, "reader", ["read"])
    refused = client.get("/metrics", headers={"Authorization": f"Bearer {reader}"})
    assert refused.status_code == 403 and "metrics" in refused.json()["detail"]
    assert client.get("/metrics", headers=scraper).headers["content-type"].startswith("text/plain")
    assert client.get("/metrics", headers=auth).status_code == 200  # an admin key holds every scope
    assert client.get("/api/v1/themes", headers=scraper).status_code == 403  # and a metrics key reads nothing else


@pytest.fixture
def proxied_postgres(database_url: str) -> Iterator[tuple[str, object]]:
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_readyz_is_unready_while_the_database_is_unreachable(proxied_postgres: tuple[str, object]) -> None:
    url, proxy = proxied_postgres
    loop = make_loop(url)
    try:
        with TestClient(create_app(loop.settings, loop=loop)) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {"status": "ready", "checks": {"database": "ok", "broker": "not configured"}}
            proxy.cut()  # type: ignore[attr-defined]
            down = client.get("/readyz")
            assert down.status_code == 503 and down.headers["retry-after"] == "5"
            assert down.json()["checks"]["database"].startswith("unreachable")
            proxy.restore()  # type: ignore[attr-defined]
            # Pooled connections died with the route; pre-ping replaces them, so it recovers by itself.
            assert client.get("/readyz").status_code == 200
    finally:
        loop.close()
