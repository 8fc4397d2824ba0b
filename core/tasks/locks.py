"""Locks across the cluster for steps that must run one at a time (theme assignment, re-clustering, polling).

On PostgreSQL a session-level advisory lock on a connection of its own: it is released when the step ends,
and by the server when the holder's connection dies (a SIGKILLed worker holds nothing). On SQLite, where
everything runs in one process, a lock of that process.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from sqlalchemy import Connection, text

from core.loop import FeedbackLoop

# A waiter's tries are one cheap statement each; trying often lets it take a lock that is let go only briefly
# (theme assignment lets go between its passes: core/tasks/steps.py).
RETRY_EVERY_S = 0.05


def lock_key(name: str) -> int:
    """A stable signed 64-bit key per name (advisory locks are numbered, not named)."""
    return int.from_bytes(hashlib.sha256(f"feedbackloop:{name}".encode()).digest()[:8], "big", signed=True)


@cache
def _process_lock(name: str) -> threading.Lock:
    return threading.Lock()


@contextmanager
def exclusive(loop: FeedbackLoop, name: str, wait_s: float = 0.0) -> Iterator[bool]:
    """Holds the lock ``name`` for the block and yields True, or yields False when another holder kept it
    for ``wait_s`` seconds (0: do not wait); the caller skips its work then, which someone is doing."""
    if loop.engine.dialect.name != "postgresql":
        lock = _process_lock(name)
        acquired = lock.acquire(timeout=wait_s) if wait_s > 0 else lock.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()
        return
    key = lock_key(name)
    with loop.engine.connect() as connection:
        acquired = _try_lock(connection, key)
        deadline = time.monotonic() + wait_s
        while not acquired and time.monotonic() < deadline:
            time.sleep(RETRY_EVERY_S)
            acquired = _try_lock(connection, key)
        try:
            yield acquired
        finally:
            if acquired:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()


def _try_lock(connection: Connection, key: int) -> bool:
    acquired = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
    connection.commit()  # the lock outlives the transaction; no transaction stays open while it is held
    return acquired
