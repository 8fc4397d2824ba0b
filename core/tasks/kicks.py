"""Telling the workers there is work: a message on the queue of that work, sent only after the commit that
made it, never holding up the caller.

The database is the queue's truth; a message is only a kick that makes a worker look now instead of at
the next sweep. So a kick may be lost (the broker is down, the process dies): the work waits in the
database and the next beat sweep, or a worker's start, picks it up. Kicks are sent from a thread of their
own, one per queue however many were asked for meanwhile; after a failure that thread waits a few seconds
before trying again and logs once per outage, so an unreachable broker costs the intake nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy.orm import Session

from core.after_commit import after_commit
from core.tasks.broker import ONE_RETRY, TASK_OF_QUEUE, Publish, publisher

RETRY_AFTER_FAILURE_S = 5.0
# At most one kick per queue per this long from one process: at 50 requests/s a kick per commit made
# embedding tasks of one or two items each, whose fixed cost (a task, a claiming transaction) took more of
# the workers' CPU than the embedding itself; gathering a fifth of a second's commits keeps each task a batch.
MIN_KICK_INTERVAL_S = 0.2

log = logging.getLogger(__name__)

class Kicker:
    """``kick(queue)`` returns at once; a thread publishes. Without a broker it does nothing."""

    def __init__(self, broker_url: str | None, queue_prefix: str = "", publish: Publish | None = None,
                 min_interval_s: float = MIN_KICK_INTERVAL_S) -> None:
        self.broker_url = broker_url
        self.min_interval_s = min_interval_s
        self.queue_prefix = queue_prefix
        self._publish = publish
        self._wanted: set[str] = set()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.failures = 0

    @property
    def enabled(self) -> bool:
        return self.broker_url is not None

    def kick(self, *queues: str) -> None:
        if not self.enabled:
            return
        unknown = set(queues) - set(TASK_OF_QUEUE)
        if unknown:
            raise ValueError(f"unknown queues {sorted(unknown)}")
        with self._wake:
            self._wanted.update(queues)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="task-kicks", daemon=True)
                self._thread.start()
            self._wake.notify()

    def after_commit(self, session: Session, *queues: str) -> None:
        """Kick ``queues`` once ``session``'s transaction commits (nothing if it rolls back)."""
        if self.enabled:
            after_commit(session, lambda: self.kick(*queues))

    def _run(self) -> None:
        outage = False
        while True:
            with self._wake:
                while not self._wanted:
                    self._wake.wait()
                queues, self._wanted = sorted(self._wanted), set()
            try:
                for queue in queues:
                    self._publisher()(queue)
                    self.sent += 1
            except Exception as error:  # the broker is away: the work waits in the database for a sweep
                self.failures += 1
                with self._wake:  # asked again once the broker is back (and meanwhile by every sweep)
                    self._wanted.update(queues)
                if not outage:
                    log.warning("broker unreachable, work waits for the next sweep: %s: %s",
                                type(error).__name__, error)
                outage = True
                with self._wake:
                    self._wake.wait(RETRY_AFTER_FAILURE_S)
                continue
            if outage:
                log.warning("broker reachable again")
            outage = False
            time.sleep(self.min_interval_s)  # kicks asked for meanwhile go out together after it

    def _publisher(self) -> Publish:
        if self._publish is None:
            assert self.broker_url is not None
            self._publish = publisher(self.broker_url, self.queue_prefix)
        return self._publish


def kick_now(app: Any, queue: str, queue_prefix: str = "") -> None:
    """From inside a worker: the next step's task on its queue (a failure is the sweep's to make up)."""
    try:
        app.send_task(TASK_OF_QUEUE[queue], queue=queue_prefix + queue, retry=True, retry_policy=ONE_RETRY)
    except Exception as error:
        log.warning("could not queue %s: %s: %s", queue, type(error).__name__, error)
