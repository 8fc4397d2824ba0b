"""The Celery application, built on demand from settings (there is no app object at import).

One task per queue, each a step of core/tasks/steps.py on the worker process's own ``FeedbackLoop``.
Tasks are acknowledged late and given back when their worker is lost (``acks_late``,
``reject_on_worker_lost``), one message at a time per process (prefetch 1): a SIGKILLed worker's task
runs again on another worker, and the steps' claims in the database make a second run harmless. No result
backend: the database holds every outcome. Sweeps (Celery beat) make up for any kick that never arrived.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_ready

from core.errors import ConfigurationError
from core.logs import configure_logging
from core.loop import FeedbackLoop
from core.settings import Settings
from core.tasks.broker import CONNECT_TIMEOUT_S, TASK_OF_QUEUE, stamp_publications, transport_options
from core.tasks.kicks import kick_now
from core.tasks.steps import EMBED_CLAIM, assign_step, deliver_step, embed_step, poll_step, recluster_step

log = logging.getLogger(__name__)


class WorkerContext:
    """The worker process's loop, made on its first task (after the fork, so no connection is shared)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loop: FeedbackLoop | None = None
        self._making = threading.Lock()  # the threads pool's first tasks arrive together

    @property
    def loop(self) -> FeedbackLoop:
        with self._making:
            if self._loop is None:
                self._loop = FeedbackLoop(self.settings)
            return self._loop

    def forget(self) -> None:
        """In a freshly forked pool process: drop the parent's loop without closing its connections."""
        if self._loop is not None:
            self._loop.engine.dispose(close=False)
        self._loop = None


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """A sweep per queue; each expires after its own period, so sweeps never pile up while workers are away."""
    every = {"embedding": settings.beat_sweep_s, "themes": settings.beat_sweep_s,
             "deliveries": settings.beat_sweep_s, "polling": settings.beat_poll_s}
    if settings.beat_recluster_s is not None:
        every["reclustering"] = settings.beat_recluster_s
    return {f"sweep-{queue}": {"task": TASK_OF_QUEUE[queue], "schedule": seconds,
                               "options": {"queue": settings.broker_queue_prefix + queue, "expires": seconds}}
            for queue, seconds in every.items()}


def make_celery(settings: Settings) -> Celery:
    if settings.broker_url is None:
        raise ConfigurationError("FEEDBACKLOOP_BROKER_URL is not set: workers need a broker (amqp:// or redis://)")
    app = Celery("feedbackloop", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=settings.broker_queue_prefix + "embedding",
        task_routes={task: {"queue": settings.broker_queue_prefix + queue}
                     for queue, task in TASK_OF_QUEUE.items()},
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=CONNECT_TIMEOUT_S,
        broker_transport_options=transport_options(settings.broker_url, settings.broker_queue_prefix,
                                                  settings.broker_visibility_timeout_s),
        worker_hijack_root_logger=False,
        timezone="UTC",
        enable_utc=True,
        beat_schedule=beat_schedule(settings),
    )
    register_tasks(app, WorkerContext(settings))
    stamp_publications()
    return app


def register_tasks(app: Celery, context: WorkerContext) -> None:
    options: dict[str, Any] = {"acks_late": True, "reject_on_worker_lost": True}

    @app.task(name=TASK_OF_QUEUE["embedding"], **options)  # type: ignore[untyped-decorator]
    def embed() -> int:
        # One claimed batch per task: under steady intake an unbounded loop never returns, so the items it
        # embedded would wait for theme assignment (kicked below) as long as the traffic lasts. The claim is
        # named here because the full-batch check below compares with it.
        embedded = embed_step(context.loop, claim=EMBED_CLAIM, max_claims=1)
        if embedded:
            kick_now(app, "themes", context.settings.broker_queue_prefix)
        if embedded >= EMBED_CLAIM:  # a full batch: more may be waiting, another task takes the next one
            kick_now(app, "embedding", context.settings.broker_queue_prefix)
        return embedded

    @app.task(name=TASK_OF_QUEUE["themes"], **options)  # type: ignore[untyped-decorator]
    def assign() -> int:
        report = assign_step(context.loop)
        return report.joined + report.new_themes

    @app.task(name=TASK_OF_QUEUE["deliveries"], **options)  # type: ignore[untyped-decorator]
    def deliver() -> int:
        report = deliver_step(context.loop)
        return report.sent + report.updated

    @app.task(name=TASK_OF_QUEUE["polling"], **options)  # type: ignore[untyped-decorator]
    def poll() -> int:
        return poll_step(context.loop, context.settings.beat_poll_s).polled

    @app.task(name=TASK_OF_QUEUE["reclustering"], **options)  # type: ignore[untyped-decorator]
    def recluster() -> int:
        report = recluster_step(context.loop)
        # Items embedded while it ran found the themes lock held and were left to it: assign them now.
        kick_now(app, "themes", context.settings.broker_queue_prefix)
        return report.themes if report is not None else -1

    worker_process_init.connect(lambda **_kwargs: context.forget(), weak=False, dispatch_uid="feedbackloop-fork")


def worker_logging(settings: Settings) -> None:
    """Our handler on the root logger (Celery's left alone: worker_hijack_root_logger is off), so the workers'
    lines carry the same fields as the API's (the request ids of the items they embed, theme and route), in
    the configured format. It writes to the process's real stderr: the worker redirects ``sys.stderr`` into a
    logger, and a handler writing there would feed itself and drop every line."""
    configure_logging(settings, stream=sys.__stderr__)


def run_worker(settings: Settings, queues: list[str], concurrency: int, pool: str, name: str | None,
               loglevel: str = "INFO") -> None:
    """A Celery worker in this process on ``queues``; once ready it sweeps each, for work waiting since before."""
    app = make_celery(settings)

    def sweep_on_start(**_kwargs: Any) -> None:
        for queue in queues:
            if queue != "reclustering":  # a full re-clustering waits for its schedule, not for a restart
                kick_now(app, queue, settings.broker_queue_prefix)

    worker_ready.connect(sweep_on_start, weak=False, dispatch_uid="feedbackloop-sweep-on-start")
    worker_logging(settings)
    prefixed = ",".join(settings.broker_queue_prefix + queue for queue in queues)
    argv = ["worker", f"--queues={prefixed}", f"--concurrency={concurrency}", f"--pool={pool}",
            f"--loglevel={loglevel}", "--without-gossip", "--without-mingle"]
    if name:
        argv.append(f"--hostname={name}")
    app.worker_main(argv)


def run_beat(settings: Settings, schedule_file: Path, loglevel: str = "INFO") -> None:
    """Celery beat: the sweeps of ``beat_schedule``; run exactly one per cluster."""
    app = make_celery(settings)
    worker_logging(settings)
    app.Beat(schedule=str(schedule_file), loglevel=loglevel).run()
