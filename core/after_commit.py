"""Work that may happen only once a session's transaction has committed: a log line that says something is
stored, a kick that tells the workers there is work. Queued on the session, run after the outermost commit,
dropped when the transaction (or the savepoint) it was queued in rolls back, so nothing ever speaks of, or
asks for, what was not stored."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

QUEUED = "feedbackloop_after_commit"

log = logging.getLogger(__name__)

Queued = list[tuple[SessionTransaction | None, Callable[[], None]]]


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run ``action`` once ``session``'s transaction commits; forget it if what it was queued in rolls back."""
    queued: Queued | None = session.info.get(QUEUED)
    if queued is None:
        queued = session.info[QUEUED] = []
        event.listen(session, "after_commit", _run_queued)
        event.listen(session, "after_soft_rollback", _drop_queued)
    queued.append((session.get_nested_transaction() or session.get_transaction(), action))


def _run_queued(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint's release: the outer transaction may still roll back
        return
    queued: Queued = session.info.get(QUEUED) or []
    session.info[QUEUED] = []
    for _transaction, action in queued:
        try:
            action()
        except Exception:  # the data is committed: a failed side effect must not turn that into an error
            log.exception("an after-commit action failed")


def _drop_queued(session: Session, rolled_back: SessionTransaction) -> None:
    queued: Queued = session.info.get(QUEUED) or []
    session.info[QUEUED] = [(transaction, action) for transaction, action in queued
                            if rolled_back.nested and not _inside(transaction, rolled_back)]


def _inside(transaction: SessionTransaction | None, outer: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is outer:
            return True
        transaction = transaction.parent
    return False
