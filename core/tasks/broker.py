"""The broker as the rest of feedbackloop sees it: connection options, a publisher for kicks (any process),
and a reachability check for /readyz. Celery and kombu are imported only when a broker is configured."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

# Publishing and readiness checks give up this fast: an unreachable broker must not hold up intake.
CONNECT_TIMEOUT_S = 2.0
# The queues, each with the task that does its work (core/tasks/celery_app.py registers them).
TASK_OF_QUEUE = {
    "embedding": "feedbackloop.embed",
    "themes": "feedbackloop.assign",
    "deliveries": "feedbackloop.deliver",
    "polling": "feedbackloop.poll",
    "reclustering": "feedbackloop.recluster",
}

Publish = Callable[[str], None]
# A publication is tried once more, at once, on a fresh connection: after a broker restart the pooled one is
# dead (the first publication of every process failed with "connection reset" and its kick waited for the
# next try), while a broker that is really away still costs the caller one connection timeout, not more.
ONE_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}


def transport_options(url: str, queue_prefix: str = "", visibility_timeout_s: float | None = None) -> dict[str, Any]:
    """Redis only: short socket timeouts, the prefix on every key (the queues' and kombu's own), and how
    long an unacknowledged task waits before another worker gets it."""
    if not url.startswith(("redis://", "rediss://")):
        return {}
    options: dict[str, Any] = {"socket_connect_timeout": CONNECT_TIMEOUT_S, "socket_timeout": 10.0}
    if queue_prefix:
        options["global_keyprefix"] = queue_prefix
    if visibility_timeout_s is not None:
        options["visibility_timeout"] = visibility_timeout_s
    return options


def stamp_publications() -> None:
    """Every task this process publishes (kicks, beat's sweeps, a worker's next step) carries the time it was
    sent, from which a worker's metrics tell how long it waited in its queue (core/tasks/metrics.py)."""
    from celery.signals import before_task_publish

    before_task_publish.connect(_stamp, weak=False, dispatch_uid="feedbackloop-sent-at")


def _stamp(headers: dict[str, Any] | None = None, **_kwargs: Any) -> None:
    if headers is not None:
        headers.setdefault("sent_at", time.time())


def publisher(broker_url: str, queue_prefix: str = "") -> Publish:
    """Sends a queue's task from any process (the API's kicks), retried once (ONE_RETRY): a sweep makes up
    for a kick that still fails."""
    from celery import Celery

    app = Celery("feedbackloop-kicks", broker=broker_url, set_as_current=False)
    app.conf.update(broker_connection_timeout=CONNECT_TIMEOUT_S, task_ignore_result=True,
                    broker_transport_options=transport_options(broker_url, queue_prefix))
    stamp_publications()

    def publish(queue: str) -> None:
        app.send_task(TASK_OF_QUEUE[queue], queue=queue_prefix + queue, retry=True, retry_policy=ONE_RETRY)

    return publish


def broker_state(broker_url: str, queue_prefix: str = "") -> str:
    """"ok", or why the broker cannot be reached, within about CONNECT_TIMEOUT_S (for /readyz)."""
    from kombu.connection import Connection

    try:
        with Connection(broker_url, connect_timeout=CONNECT_TIMEOUT_S,  # type: ignore[no-untyped-call]
                        transport_options=transport_options(broker_url, queue_prefix)) as connection:
            connection.ensure_connection(max_retries=1, timeout=CONNECT_TIMEOUT_S)
            if connection.transport.driver_type == "redis":
                connection.default_channel.client.ping()
    except Exception as error:
        return f"unreachable: {type(error).__name__}"
    return "ok"
