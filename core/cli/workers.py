"""Commands of the scaled-out mode (FEEDBACKLOOP_BROKER_URL set): ``worker`` (a Celery worker on some or all
queues) and ``beat`` (the periodic sweeps; one per cluster). Without a broker, ``deliveries work`` does it all."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.errors import ConfigurationError, InvalidInput
from core.loop import FeedbackLoop
from core.settings import get_settings
from core.tasks.broker import TASK_OF_QUEUE
from core.tasks.locks import exclusive

MIGRATION_WAIT_S = 600.0


def _settings_with_broker() -> None:
    if get_settings().broker_url is None:
        raise ConfigurationError("FEEDBACKLOOP_BROKER_URL is not set (amqp://... or redis://...); without a broker, "
                                 "`feedbackloop deliveries work` does the work in one process")


def _migrate_once() -> None:
    """The schema migrated (and the pseudonym key checked) before any task, by one worker at a time: several
    machines started together on a new database would otherwise race to create the same tables."""
    loop = FeedbackLoop(get_settings())
    try:
        with exclusive(loop, "migrations", wait_s=MIGRATION_WAIT_S) as held:
            if not held:
                raise ConfigurationError(f"another process kept the migration lock for {MIGRATION_WAIT_S:.0f} s")
            loop.migrate()
    finally:
        loop.close()


def worker(
    queues: Annotated[str, typer.Option(help=f"Comma-separated queues to work on, of {', '.join(TASK_OF_QUEUE)}.")]
    = ",".join(TASK_OF_QUEUE),
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Tasks at a time (pool processes).")] = 1,
    pool: Annotated[str, typer.Option(help="Celery pool: prefork, threads or solo.")] = "prefork",
    name: Annotated[str | None, typer.Option(help="Node name, e.g. embed1@%h (unique per worker).")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Serve task metrics (Prometheus) on this port.")] = None,
    loglevel: Annotated[str, typer.Option()] = "INFO",
) -> None:
    """A Celery worker: takes the queues' tasks (embedding, themes, deliveries, polling, reclustering)."""
    _settings_with_broker()
    chosen = [queue.strip() for queue in queues.split(",") if queue.strip()]
    unknown = sorted(set(chosen) - set(TASK_OF_QUEUE))
    if unknown or not chosen:
        raise InvalidInput(f"unknown queues {unknown}; choose from {', '.join(TASK_OF_QUEUE)}")
    if pool not in ("prefork", "threads", "solo"):
        raise InvalidInput("the pool is prefork, threads or solo")
    if metrics_port is not None:
        from core.tasks.metrics import serve_task_metrics  # before the pool forks: its processes share the files

        serve_task_metrics(metrics_port, multiprocess=pool == "prefork")
    _migrate_once()
    from core.tasks.celery_app import run_worker

    run_worker(get_settings(), chosen, concurrency, pool, name, loglevel)


def beat(
    schedule_file: Annotated[Path, typer.Option(help="Where beat keeps when each sweep last ran.")]
    = Path("feedbackloop-beat-schedule"),
    loglevel: Annotated[str, typer.Option()] = "INFO",
) -> None:
    """Celery beat: sweeps every queue for work nobody kicked (run exactly one per cluster)."""
    _settings_with_broker()
    from core.tasks.celery_app import run_beat

    run_beat(get_settings(), schedule_file, loglevel)


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.command()(beat)
