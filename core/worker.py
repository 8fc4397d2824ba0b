"""The background worker's round: new items into themes, deliveries, tracker statuses, spike notices,
closing-the-loop replies, decline alerts.

Every step is idempotent and keeps its progress in the database, so the worker can be killed at any
point and started again (``feedbackloop deliveries work``).
"""

from __future__ import annotations

import time

from core.community.decline import check_declines
from core.intake.polling import poll_due
from core.loop import FeedbackLoop
from core.routing.outbox import DeliveryPolicy, RouteReport, send_due
from core.routing.replies import send_loop_replies
from core.routing.spikes import check_spikes
from core.routing.tracker_status import poll_statuses
from core.themes.incremental import assign_new_items


def run_round(loop: FeedbackLoop, policy: DeliveryPolicy | None = None, poll_every_s: float = 60.0) -> RouteReport:
    with loop.session() as session:  # new items join their themes first, so spikes see them at once
        assign_new_items(loop, session)
    check_spikes(loop)  # then: a spike notice is the one thing that must not wait
    report = send_due(loop, policy)
    poll_statuses(loop, min_interval_s=poll_every_s)
    send_loop_replies(loop)
    poll_due(loop)  # polled channels (feeds, app stores...) that are due; their items join themes next round
    check_declines(loop)  # a channel whose posts fell for weeks: its owner is told once per episode
    return report


def run_forever(loop: FeedbackLoop, policy: DeliveryPolicy | None = None, interval_s: float = 5.0,
                poll_every_s: float = 60.0) -> None:
    while True:
        run_round(loop, policy, poll_every_s)
        time.sleep(interval_s)
