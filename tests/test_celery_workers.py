"""Celery workers on PostgreSQL with RabbitMQ and with Redis: real ``feedbackloop worker`` and ``beat``
processes, the intake in this process (the API app, committing before it answers, kicking after).

- two workers: every item sent through the API is embedded and themed, and each theme's ticket is
  filed exactly once (one call to the tracker per delivery, however the two workers and beat race);
- a worker SIGKILLed while its task is in the tracker's hands: the delivery runs again on the other
  worker, which finds the ticket by its idempotency key instead of filing a second one;
- the broker cut off (a TCP proxy in front of RabbitMQ): the API still answers 201 after its commit,
  /readyz says 503 with Retry-After, nothing waits in vain: once the broker is back the backlog drains.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from api.app import create_app
from core.loop import FeedbackLoop
from core.models import Delivery, FeedbackItem, ThemeMembership
from core.routing.plan import plan_deliveries
from tests.plugins import celery_kit
from tests.support.celery_cluster import (
    BROKERS,
    RABBITMQ_URL,
    Cluster,
    Ledger,
    cluster,
    cluster_env,
    require_broker,
    wait_until,
)
from tests.support.env import ADMIN_KEY
from tests.support.loops import make_loop
from tests.support.server import free_port
from tests.support.tcp_proxy import tcp_proxy

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("database_url", ["postgres"], indirect=True)]

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
TOPICS = ("invoice pdf shows the wrong vat number", "dark mode please my eyes hurt at night",
          "export the audit log as csv file", "the app logs me out on the train every minute")


def items(batch: str, per_topic: int = 6) -> list[dict[str, str]]:
    return [{"text": f"{topic} ({batch} {n})", "channel": "api-celery", "external_id": f"{batch}-{t}-{n}"}
            for t, topic in enumerate(TOPICS) for n in range(per_topic)]


@contextmanager
def intake(database_url: str, env: dict[str, str], folder: Path, ledger: Ledger) -> Iterator[
        tuple[FeedbackLoop, TestClient]]:
    """This process's loop (the API's, and the product manager's routing) on the cluster's settings."""
    rules = folder / "rules.toml"
    rules.write_text(f'[default]\nowner = "support"\ntarget = "ledger"\ntarget_options = {{ url = "{ledger.url}" }}\n')
    loop = make_loop(database_url, broker_url=env["FEEDBACKLOOP_BROKER_URL"], rules_file=rules,
                     broker_queue_prefix=env["FEEDBACKLOOP_BROKER_QUEUE_PREFIX"])
    loop.pm.register(celery_kit)
    try:
        with TestClient(create_app(loop.settings, loop=loop)) as client:
            yield loop, client
    finally:
        loop.close()


def counts(loop: FeedbackLoop, batch: str) -> tuple[int, int, int]:
    """(items stored, embedded, themed) of one batch."""
    with loop.session() as session:
        of_batch = FeedbackItem.external_id.like(f"{batch}-%")
        stored = session.scalar(select(func.count()).where(of_batch)) or 0
        embedded = session.scalar(select(func.count()).where(of_batch, FeedbackItem.embedding.is_not(None))) or 0
        themed = session.scalar(select(func.count()).select_from(FeedbackItem).join(ThemeMembership)
                                .where(of_batch)) or 0
    return stored, embedded, themed


def send(client: TestClient, batch: str) -> None:
    answer = client.post("/api/v1/feedback", json={"items": items(batch)}, headers=AUTH)
    assert answer.status_code == 201, answer.text
    assert answer.json()["created"] == len(TOPICS) * 6


def all_themed(loop: FeedbackLoop, batch: str, workers: Cluster, timeout_s: float = 40.0) -> None:
    expected = len(TOPICS) * 6
    wait_until(lambda: counts(loop, batch) == (expected, expected, expected), timeout_s,
               f"batch {batch} themed (stored, embedded, themed = {counts(loop, batch)})",
               lambda: workers.log("w1")[-3000:])


def route_everything(loop: FeedbackLoop) -> int:
    """What a product manager's "route" does: outbox rows written, then the workers kicked."""
    with loop.session() as session:
        decided = plan_deliveries(loop, session).decided
        loop.kicks.after_commit(session, "deliveries")
    return decided


def task_metrics(port: int) -> dict[tuple[str, str, str], float]:
    """{(sample name, queue, outcome): value} from a worker's metrics server."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {(sample.name, sample.labels.get("queue", ""), sample.labels.get("outcome", "")): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def logged_items(workers: Cluster, names: tuple[str, ...], event: str) -> list[dict[str, object]]:
    """The items named by the workers' JSON lines of ``event`` (Celery's banner, on stdout, is not JSON)."""
    lines = [json.loads(line) for name in names for line in workers.log(name).splitlines()
             if line.startswith("{")]
    return [ref for line in lines if line["event"] == event for ref in line["items"]]


def deliveries(loop: FeedbackLoop) -> list[Delivery]:
    with loop.session() as session:
        found = list(session.scalars(select(Delivery).order_by(Delivery.id)))
        session.expunge_all()
    return found


@pytest.mark.parametrize("broker", [pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
                                    pytest.param("redis", marks=pytest.mark.redis)])
def test_two_workers_theme_every_item_and_file_each_ticket_once(database_url: str, broker: str,
                                                                tmp_path: Path) -> None:
    require_broker(BROKERS[broker])
    ledger = Ledger()
    env = {**cluster_env(database_url, BROKERS[broker], tmp_path), "FEEDBACKLOOP_LOG_FORMAT": "json"}
    with intake(database_url, env, tmp_path, ledger) as (loop, client), cluster(env, tmp_path) as workers:
        metrics_ports = (free_port(), free_port())
        workers.start_worker("w1", "--concurrency=2", f"--metrics-port={metrics_ports[0]}")
        workers.start_worker("w2", "--concurrency=2", "--pool=threads", f"--metrics-port={metrics_ports[1]}")
        workers.start_beat()
        workers.wait_ready("w1", "w2")
        send(client, "a")
        all_themed(loop, "a", workers)
        # The workers' own lines are JSON and name each item with the id of the request that brought it.
        with loop.session() as session:
            brought = {item_id: request_id for item_id, request_id in session.execute(
                select(FeedbackItem.id, FeedbackItem.request_id).where(FeedbackItem.external_id.like("a-%")))}
        assert all(brought.values())
        for event in ("item.embedded", "item.themed"):
            named = logged_items(workers, ("w1", "w2"), event)
            assert {ref["item_id"]: ref["request_id"] for ref in named} == brought, event
        decided = route_everything(loop)
        assert decided >= len(TOPICS) - 1  # one theme per topic, give or take the hash embedder's luck
        wait_until(lambda: all(d.state == "sent" for d in deliveries(loop)), 30, "every delivery sent",
                   lambda: str([(d.id, d.state, d.last_error) for d in deliveries(loop)]))
        sent = deliveries(loop)
        assert len(sent) == decided
        assert len(ledger.tickets) == decided
        # Exactly once: one call per delivery, though both workers and beat's sweeps ran send_due.
        assert Counter(key for key, _ in ledger.calls) == Counter({d.idempotency_key: 1 for d in sent})
        assert {d.external_ref for d in sent} == set(ledger.tickets.values())
        assert all(d.attempts == 1 for d in sent)
        # The workers' task metrics moved (w1's from its pool processes, w2's from its threads): run times
        # per queue and outcome, and waits in the queue, beat's sweeps and the kicks after commits alike.
        scraped: Counter[tuple[str, str, str]] = Counter()
        for port in metrics_ports:
            scraped.update(task_metrics(port))
        for queue in ("embedding", "themes", "deliveries"):
            assert scraped[("feedbackloop_task_seconds_count", queue, "success")] >= 1, (queue, scraped)
            assert scraped[("feedbackloop_task_wait_seconds_count", queue, "")] >= 1, (queue, scraped)


@pytest.mark.parametrize("broker", [pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
                                    pytest.param("redis", marks=pytest.mark.redis)])
def test_a_worker_killed_in_the_middle_of_a_delivery_is_redone_elsewhere_without_a_second_ticket(
        database_url: str, broker: str, tmp_path: Path) -> None:
    require_broker(BROKERS[broker])
    ledger = Ledger(hold_first=True)
    # The claim's pessimistic next attempt (4-8 s after the claim) outlasts the kill, even on a loaded machine:
    # nobody else calls while the victim does.
    env = {**cluster_env(database_url, BROKERS[broker], tmp_path), "FEEDBACKLOOP_DELIVERY_BACKOFF_S": "8"}
    with intake(database_url, env, tmp_path, ledger) as (loop, client), cluster(env, tmp_path) as workers:
        workers.start_worker("w1")
        workers.start_worker("w2")
        workers.start_beat()
        workers.wait_ready("w1", "w2")
        send(client, "k")
        all_themed(loop, "k", workers)
        decided = route_everything(loop)
        assert ledger.held.wait(30), "no delivery reached the ledger"
        held_key, held_pid = ledger.calls[0]
        victim = workers.group_of(held_pid)
        assert victim in ("w1", "w2"), f"the call came from pid {held_pid}, no worker's"
        survivor = "w2" if victim == "w1" else "w1"
        workers.kill(victim)  # with its pool: the ticket is made, the worker never heard back
        killed_at = time.time()
        ledger.release()
        wait_until(lambda: all(d.state == "sent" for d in deliveries(loop)), 40, "every delivery sent",
                   lambda: workers.log(survivor)[-3000:])
        held = next(d for d in deliveries(loop) if d.idempotency_key == held_key)
        assert held.attempts == 2 and held.external_ref == ledger.tickets[held_key]
        again = [(pid, at) for key, pid, at in ledger.timed_calls() if key == held_key][1:]
        assert len(again) == 1 and again[0][1] > killed_at
        assert workers.group_of(again[0][0]) == survivor
        assert len(ledger.tickets) == decided  # one ticket per delivery: the rerun found the first


@pytest.mark.rabbitmq
def test_a_broker_outage_loses_nothing_and_the_backlog_drains(database_url: str, tmp_path: Path) -> None:
    require_broker(RABBITMQ_URL)
    ledger = Ledger()
    with tcp_proxy("127.0.0.1", 5672) as proxy:
        env = cluster_env(database_url, f"amqp://guest:guest@127.0.0.1:{proxy.port}//", tmp_path)
        with intake(database_url, env, tmp_path, ledger) as (loop, client), cluster(env, tmp_path) as workers:
            workers.start_worker("w1")
            workers.start_worker("w2")
            workers.start_beat()
            workers.wait_ready("w1", "w2")
            assert client.get("/readyz").status_code == 200
            send(client, "before")
            all_themed(loop, "before", workers)

            proxy.cut()
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.headers["Retry-After"]
            assert ready.json()["checks"]["broker"].startswith("unreachable")
            assert ready.json()["checks"]["database"] == "ok"
            send(client, "during")  # 201 after the commit, the broker's absence notwithstanding
            assert counts(loop, "during")[0] == len(TOPICS) * 6
            time.sleep(2)
            assert counts(loop, "during")[1] == 0  # no worker heard of them: they wait in the database

            proxy.restore()
            wait_until(lambda: client.get("/readyz").status_code == 200, 20, "/readyz ready again")
            all_themed(loop, "during", workers, timeout_s=45)
            assert counts(loop, "before")[0] == len(TOPICS) * 6  # nothing lost, nothing doubled

