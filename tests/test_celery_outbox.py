"""The outbox and the embedding queue across workers, in one process: several senders at once on
PostgreSQL claim each due delivery once (``FOR UPDATE SKIP LOCKED``), several embedders claim disjoint
batches, the cluster-wide lock admits one holder; kicks go out only after a commit, and a broker that
cannot be reached costs the caller nothing."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from core import hookimpl
from core.cli.app import app
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import Delivery, FeedbackItem, Theme
from core.routing.outbox import send_due
from core.settings import Settings
from core.tasks.kicks import Kicker
from core.tasks.locks import exclusive
from core.tasks.steps import embed_step, poll_step, recluster_step
from core.types import DeliveryRequest, DeliveryResult, ItemDraft, TargetType
from tests.support.loops import HashEmbedder

ON_POSTGRES = pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                                      indirect=True)


class CountingTarget:
    """A target that takes a little time per call (so concurrent senders overlap) and counts calls per key."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def deliver(self, request: DeliveryRequest) -> DeliveryResult:
        time.sleep(0.01)
        with self._lock:
            self.calls[request.idempotency_key] += 1
        return DeliveryResult(external_ref=f"ref-{request.idempotency_key}")

    @hookimpl
    def register_target_types(self, register: Any) -> None:
        register(TargetType(name="counting", description="counts calls", deliver=self.deliver))


class CountingEmbedder(HashEmbedder):
    def __init__(self) -> None:
        self.texts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], progress: object = None) -> np.ndarray:
        with self._lock:
            self.texts.update(texts)
        time.sleep(0.01)
        return super().embed(texts)


def run_together(count: int, work: Any) -> None:
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            work()
        except BaseException as error:  # surfaced below: a thread's failure must fail the test
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


@ON_POSTGRES
def test_concurrent_senders_send_each_delivery_once(any_loop: FeedbackLoop) -> None:
    target = CountingTarget()
    any_loop.pm.register(target)
    with any_loop.session() as session:
        for n in range(40):
            theme = Theme(label=f"theme {n}")
            session.add(theme)
            session.flush()
            session.add(Delivery(theme_id=theme.id, target_type="counting", idempotency_key=f"key-{n}",
                                 state="pending", options={}))
    run_together(4, lambda: send_due(any_loop))
    assert target.calls == Counter({f"key-{n}": 1 for n in range(40)})
    with any_loop.session() as session:
        assert set(session.scalars(select(Delivery.state))) == {"sent"}
        assert set(session.scalars(select(Delivery.attempts))) == {1}


@ON_POSTGRES
def test_concurrent_embedders_claim_disjoint_batches(any_loop: FeedbackLoop) -> None:
    embedder = CountingEmbedder()
    any_loop._embedder = embedder
    with any_loop.session() as session:
        ingest(any_loop, session, [ItemDraft(text=f"item number {n} about topic {n % 7}", channel="api",
                                             external_id=str(n)) for n in range(300)])
    totals: list[int] = []
    run_together(3, lambda: totals.append(embed_step(any_loop, claim=16)))
    assert sum(totals) == 300
    assert len(embedder.texts) == 300 and set(embedder.texts.values()) == {1}  # none embedded twice
    assert min(totals) > 0  # the backlog was shared, not taken by one
    with any_loop.session() as session:
        assert session.scalar(select(func.count()).where(FeedbackItem.embedding.is_(None))) == 0


def test_the_cluster_lock_admits_one_holder(any_loop: FeedbackLoop) -> None:
    outcomes: list[bool] = []
    with exclusive(any_loop, "themes") as first:
        thread = threading.Thread(target=lambda: outcomes.append(exclusive(any_loop, "themes").__enter__()))
        thread.start()
        thread.join()
        with exclusive(any_loop, "polling") as other_name:
            assert other_name
    assert first and outcomes == [False]
    with exclusive(any_loop, "themes", wait_s=1) as again:
        assert again


def test_reclustering_and_polling_skip_while_another_worker_holds_them(any_loop: FeedbackLoop) -> None:
    with any_loop.session() as session:
        ingest(any_loop, session, [ItemDraft(text=f"dark mode please {n}", channel="api", external_id=str(n))
                                   for n in range(12)])
    embed_step(any_loop)
    for name, step in (("reclustering", recluster_step), ("polling", poll_step)):
        holder = threading.Thread(target=hold, args=(any_loop, name, held := threading.Event(),
                                                     done := threading.Event()))
        holder.start()
        held.wait(10)
        try:
            outcome = step(any_loop)
        finally:
            done.set()
            holder.join()
        assert outcome is None if name == "reclustering" else outcome.skipped
    report = recluster_step(any_loop)
    assert report is not None and report.items == 12
    assert not poll_step(any_loop).skipped


def hold(loop: FeedbackLoop, name: str, held: threading.Event, done: threading.Event) -> None:
    """Another worker's lock, held from another thread (and connection) until told to let go."""
    with exclusive(loop, name) as acquired:
        assert acquired
        held.set()
        done.wait(30)


def test_kicks_go_out_after_commit_only(any_loop: FeedbackLoop) -> None:
    published: list[str] = []
    kicker = Kicker("amqp://nowhere//", publish=published.append)
    with pytest.raises(RuntimeError), any_loop.session() as session:
        kicker.after_commit(session, "embedding")
        raise RuntimeError("rolled back")
    with any_loop.session() as session:
        kicker.after_commit(session, "deliveries")
        time.sleep(0.3)
        assert published == []  # not before the commit
    deadline = time.monotonic() + 5
    while not published and time.monotonic() < deadline:
        time.sleep(0.05)
    assert published == ["deliveries"]


def test_kicks_asked_for_in_quick_succession_go_out_together() -> None:
    """A kick per commit at 50 commits/s would make tasks of one item each: one message per queue per interval."""
    published: list[str] = []
    kicker = Kicker("amqp://nowhere//", publish=published.append, min_interval_s=0.5)
    for _ in range(50):  # a second's worth of commits, each asking for embedding
        kicker.kick("embedding")
        time.sleep(0.02)
    deadline = time.monotonic() + 5
    while len(published) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.6)  # one interval more: anything still wanted has gone out
    assert published == ["embedding"] * len(published) and 2 <= len(published) <= 4


def test_an_unreachable_broker_costs_the_caller_nothing_and_is_tried_again() -> None:
    attempts: list[str] = []

    def publish(queue: str) -> None:
        attempts.append(queue)
        if len(attempts) == 1:
            raise ConnectionRefusedError("broker down")

    kicker = Kicker("amqp://nowhere//", publish=publish)
    started = time.monotonic()
    kicker.kick("embedding")
    assert time.monotonic() - started < 0.5  # the intake never waits for the broker
    deadline = time.monotonic() + 15
    while kicker.sent == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert kicker.failures == 1 and kicker.sent == 1 and attempts == ["embedding", "embedding"]
    assert not Kicker(None).enabled
    Kicker(None).kick("embedding")  # laptop mode: nothing to tell, nothing happens


def test_the_worker_needs_a_broker(cli_env: str) -> None:
    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 2 and "FEEDBACKLOOP_BROKER_URL is not set" in result.output


def test_a_broker_url_must_name_a_known_transport() -> None:
    with pytest.raises(ValueError, match="broker URL"):
        Settings(broker_url="kafka://somewhere")
    assert Settings(broker_url="").broker_url is None


def test_an_embedding_task_takes_one_claim_then_hands_on_to_theming_and_the_next_task(
        loop: FeedbackLoop, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under steady intake a task that embedded until nothing was left would never end, and the items it
    embedded would never be themed (issue 17's scale-out bench found it): one claim per task instead."""
    from celery import Celery

    from core.tasks import celery_app

    kicked: list[str] = []
    monkeypatch.setattr(celery_app, "kick_now", lambda _app, queue, _prefix="": kicked.append(queue))
    monkeypatch.setattr(celery_app, "EMBED_CLAIM", 16)
    app = Celery("test-embedding-task", broker="memory://", set_as_current=False)
    context = celery_app.WorkerContext(loop.settings)
    context._loop = loop
    celery_app.register_tasks(app, context)
    with loop.session() as session:
        ingest(loop, session, [ItemDraft(text=f"item number {n} about topic {n % 7}", channel="api",
                                         external_id=str(n)) for n in range(40)])
    embed = app.tasks["feedbackloop.embed"]
    assert [embed(), embed(), embed(), embed()] == [16, 16, 8, 0]
    assert kicked == ["themes", "embedding", "themes", "embedding", "themes"]


@ON_POSTGRES
def test_theme_assignment_leaves_a_held_lock_alone_and_its_holder_takes_what_arrived_meanwhile(
        any_loop: FeedbackLoop, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task waiting for the themes lock held a pool process that could have embedded: under steady intake
    (issue 17's scale-out bench) every pool process ended up waiting. Now a caller that finds the lock held
    returns, and the holder passes again for the items embedded during its pass."""
    from core.tasks import steps
    from core.themes import incremental

    def arrive(prefix: str) -> None:
        with any_loop.session() as session:
            ingest(any_loop, session, [ItemDraft(text=f"{prefix} the export to csv fails {n}", channel="api",
                                                 external_id=f"{prefix}-{n}") for n in range(6)])
        embed_step(any_loop)

    arrive("first")
    passes: list[int] = []
    real_pass = incremental.assign_embedded

    def one_pass(loop: FeedbackLoop, session: Any) -> Any:
        passes.append(len(incremental.waiting_item_ids(session)))
        done_pass = real_pass(loop, session)
        if len(passes) == 1:
            arrive("during")  # committed while this pass runs, after its query: the next pass has them
        return done_pass

    monkeypatch.setattr(steps, "assign_embedded", one_pass)
    holding, done = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with exclusive(any_loop, "themes") as held:
            assert held
            holding.set()
            done.wait(1.0)  # let go a second later: a caller that waited for it would then pass

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    holding.wait(10)
    skipped = steps.assign_step(any_loop)
    done.set()
    holder.join(10)
    assert passes == [] and skipped.joined + skipped.new_themes == 0  # it did not wait for the holder

    steps.assign_step(any_loop)
    assert len(passes) == 2  # a second pass for the items that arrived during the first
    with any_loop.session() as session:
        assert session.scalar(select(func.count()).select_from(FeedbackItem)) == 12
