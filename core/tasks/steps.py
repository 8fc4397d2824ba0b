"""The steps after intake, one function per task kind; `deliveries work` runs them in turn, Celery workers
run each as the task of its queue. Each keeps its progress in the database and is safe to run twice, and
safe to run on several workers at once:

- embedding claims batches of items with ``FOR NO KEY UPDATE SKIP LOCKED`` (two workers never embed one
  item), the embeddings written in the claiming transaction, so a killed worker's batch is simply claimed
  again; NO KEY: rows that reference a claimed item (a sighting, a membership) can still be written;
- theme assignment and spike checks run one at a time across the cluster (a lock: two assigners would
  form the same new theme twice from one waiting pool);
- deliveries are claimed row by row (core/routing/outbox.py);
- polling (tracker statuses, loop replies, polled channels, decline checks) and re-clustering run one at a
  time; a second caller skips, because the first is doing the same work.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from core.community.decline import check_declines
from core.db import refresh_statistics
from core.intake.polling import poll_due
from core.loop import FeedbackLoop
from core.models import FeedbackItem
from core.routing.outbox import DeliveryPolicy, RouteReport, send_due
from core.routing.replies import send_loop_replies
from core.routing.spikes import check_spikes
from core.routing.tracker_status import poll_statuses
from core.tasks.locks import exclusive
from core.themes.build import RECLUSTERING_REWRITES, ClusterReport, embed_items, lacks_embedding_of, recluster
from core.themes.incremental import AssignReport, assign_embedded, waiting_item_ids

# Items claimed per embedding transaction: several of the embedder's batches, few enough that a killed
# worker loses little and that other workers get their share of a backlog.
EMBED_CLAIM = 512
# How long a re-clustering waits for theme assignment to let go of the lock.
THEMES_WAIT_S = 30.0
# Between two assignment passes: long enough for a re-clustering polling for the lock (every 0.05 s) to take
# it, short because every item that arrives during a pass waits for the next one.
BETWEEN_PASSES_S = 0.15

log = logging.getLogger(__name__)


@dataclass
class PollReport:
    statuses: int = 0
    replies: int = 0
    polled: int = 0  # items new from polled channels
    declines: int = 0
    skipped: bool = False


def embed_step(loop: FeedbackLoop, claim: int = EMBED_CLAIM, max_claims: int | None = None) -> int:
    """Embed (and re-score) every item without the configured model's embedding, batch by claimed batch (each
    distinct text once: core/themes/embedding.py); how many were given a vector. With ``max_claims``, at most
    that many batches: a task must end while items keep arriving, or the steps after it never get a turn."""
    total = 0
    claims: Iterable[int] = itertools.count() if max_claims is None else range(max_claims)
    for _ in claims:
        with loop.session() as session:
            items = list(session.scalars(
                select(FeedbackItem).where(lacks_embedding_of(loop.embedder.name)).order_by(FeedbackItem.id)
                .limit(claim).with_for_update(skip_locked=True, key_share=True)
            ))
            if not items:
                return total
            embed_items(loop, session, items)
        total += len(items)
    return total


def assign_step(loop: FeedbackLoop) -> AssignReport:
    """Embedded items join their themes (or form new ones), then spikes are checked: they see them at once.

    One assigner at a time across the cluster, and the others do not wait for it: a task waiting for the
    lock holds a pool process that could embed meanwhile (under steady intake they ended up all waiting).
    The holder takes their items instead: it passes again while items arrived during its pass, letting go
    of the lock between passes (a re-clustering waiting for it gets its turn), and looks once more after
    letting go, so an item whose kick found the lock held is never left waiting for the next sweep."""
    report = AssignReport()
    while True:
        with exclusive(loop, "themes") as held:
            if not held:
                return report
            began = time.perf_counter()
            with loop.session() as session:
                passed = assign_embedded(loop, session)
            themed = time.perf_counter()
            check_spikes(loop)
            log.info("themes.pass seconds=%.3f spikes_seconds=%.3f looked_at=%d joined=%d new_themes=%d waiting=%d",
                     themed - began, time.perf_counter() - themed, len(passed.looked_at), passed.joined,
                     passed.new_themes, passed.waiting)
        report.embedded += passed.embedded
        report.joined += passed.joined
        report.new_themes += passed.new_themes
        report.waiting = passed.waiting
        with loop.session() as session:
            arrived = waiting_item_ids(session) - passed.looked_at
        if not arrived:
            return report
        time.sleep(BETWEEN_PASSES_S)


def deliver_step(loop: FeedbackLoop, policy: DeliveryPolicy | None = None) -> RouteReport:
    return send_due(loop, policy)


def poll_step(loop: FeedbackLoop, poll_every_s: float = 60.0) -> PollReport:
    """Tracker statuses, closing-the-loop replies, polled channels that are due, channels in decline."""
    with exclusive(loop, "polling") as held:
        if not held:
            return PollReport(skipped=True)
        report = PollReport(statuses=poll_statuses(loop, min_interval_s=poll_every_s))
        report.replies = send_loop_replies(loop)
        report.polled = poll_due(loop).created
        report.declines = check_declines(loop)
    return report


def recluster_step(loop: FeedbackLoop) -> ClusterReport | None:
    """A full re-clustering, one at a time across the cluster; None when another worker is doing one."""
    with exclusive(loop, "reclustering") as held:
        if not held:
            return None
        with exclusive(loop, "themes", wait_s=THEMES_WAIT_S) as themes_held:
            if not themes_held:
                return None
            with loop.session() as session:
                report = recluster(loop, session)
            refresh_statistics(loop.engine, RECLUSTERING_REWRITES)  # before the next pass plans its queries
            return report
