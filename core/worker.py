"""The background worker's round: new items into themes, deliveries, tracker statuses, spike notices,
closing-the-loop replies, decline alerts.

Every step is idempotent and keeps its progress in the database, so the worker can be killed at any
point and started again (``feedbackloop deliveries work``). These are the steps Celery workers run as
tasks when a broker is configured (core/tasks/); here they run in turn in one process.
"""

from __future__ import annotations

import time

from core.loop import FeedbackLoop
from core.routing.outbox import DeliveryPolicy, RouteReport
from core.tasks.steps import assign_step, deliver_step, embed_step, poll_step


def run_round(loop: FeedbackLoop, policy: DeliveryPolicy | None = None, poll_every_s: float = 60.0) -> RouteReport:
    embed_step(loop)  # new items join their themes first, so spikes see them at once
    assign_step(loop)  # then: a spike notice is the one thing that must not wait
    report = deliver_step(loop, policy)
    # Tracker statuses, replies, polled channels (their items join themes next round), decline checks.
    poll_step(loop, poll_every_s)
    return report


def run_forever(loop: FeedbackLoop, policy: DeliveryPolicy | None = None, interval_s: float = 5.0,
                poll_every_s: float = 60.0) -> None:
    while True:
        run_round(loop, policy, poll_every_s)
        time.sleep(interval_s)
