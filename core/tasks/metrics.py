"""A worker's task metrics in Prometheus's format, on ``feedbackloop worker --metrics-port``: per queue,
how long tasks waited in the broker and how long they ran, and how they ended.

Celery's signals fire in the process that runs the task: with the prefork pool that is a pool process,
so the figures are kept in prometheus_client's multiprocess files (a folder per worker) and the worker's
main process serves them all (prometheus_client's own HTTP server); threads and solo pools keep them in
memory. The API's ``/metrics`` keeps the queue depths, read from the database (core/pipeline_state.py).
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from celery.signals import task_postrun, task_prerun

from core.tasks.broker import TASK_OF_QUEUE

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds: from milliseconds (a delivery to a fast target) to a re-clustering of a large database.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


def serve_task_metrics(port: int, multiprocess: bool) -> None:
    """Start serving on ``port`` and record every task from now on; call before the pool starts."""
    if multiprocess and not os.environ.get(MULTIPROCESS_ENV):
        # Read by prometheus_client when it is first imported, just below: this process imported it not yet.
        os.environ[MULTIPROCESS_ENV] = tempfile.mkdtemp(prefix="feedbackloop-worker-metrics-")
    from prometheus_client import CollectorRegistry, Histogram, start_http_server

    registry = CollectorRegistry()
    if multiprocess:
        from prometheus_client import multiprocess as prometheus_multiprocess

        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    recorded_in = None if multiprocess else registry  # multiprocess figures go to the files, not a registry
    run_seconds = Histogram("feedbackloop_task_seconds", "Time a task ran, by queue and outcome",
                            ["queue", "outcome"], buckets=BUCKETS, registry=recorded_in)
    wait_seconds = Histogram("feedbackloop_task_wait_seconds", "Time from a task's publication to its start, "
                             "by queue", ["queue"], buckets=BUCKETS, registry=recorded_in)
    queue_of_task = {task: queue for queue, task in TASK_OF_QUEUE.items()}
    started: dict[str, float] = {}

    def on_start(task_id: str, task: Any, **_kwargs: Any) -> None:
        now = time.time()
        started[task_id] = now
        sent_at = getattr(task.request, "sent_at", None)
        if isinstance(sent_at, int | float):
            wait_seconds.labels(queue_of_task.get(task.name, "other")).observe(max(0.0, now - sent_at))

    def on_end(task_id: str, task: Any, state: str | None = None, **_kwargs: Any) -> None:
        began = started.pop(task_id, None)
        if began is not None:
            outcome = (state or "unknown").lower()
            run_seconds.labels(queue_of_task.get(task.name, "other"), outcome).observe(time.time() - began)

    task_prerun.connect(on_start, weak=False, dispatch_uid="feedbackloop-metrics-start")
    task_postrun.connect(on_end, weak=False, dispatch_uid="feedbackloop-metrics-end")
    start_http_server(port, addr="0.0.0.0", registry=registry)
