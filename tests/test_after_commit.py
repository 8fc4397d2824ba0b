"""core.after_commit: actions run after the outermost commit, never after the rollback of the transaction or
savepoint they were queued in; a failing action neither undoes nor hides the commit, nor stops the others."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from core.after_commit import after_commit
from core.loop import FeedbackLoop
from core.models import FeedbackItem


def item(external_id: str) -> FeedbackItem:
    return FeedbackItem(channel="api", external_id=external_id, text_original="kept", text_redacted="kept")


def test_actions_wait_for_the_commit_and_die_with_a_rollback(loop: FeedbackLoop) -> None:
    ran: list[str] = []
    with loop.session() as session:
        session.add(item("1"))
        session.flush()
        after_commit(session, lambda: ran.append("rolled back"))
        session.rollback()
        session.add(item("2"))
        session.flush()
        after_commit(session, lambda: ran.append("committed"))
        assert ran == []
        session.commit()
        assert ran == ["committed"]
        session.add(item("3"))
        session.commit()  # a later commit of the same session runs nothing twice
    assert ran == ["committed"]


def test_savepoints_neither_run_nor_drop_what_the_outer_transaction_queued(loop: FeedbackLoop) -> None:
    ran: list[str] = []
    with loop.session() as session:
        session.add(item("outer"))
        session.flush()
        after_commit(session, lambda: ran.append("outer"))
        with session.begin_nested():
            session.add(item("released"))
            after_commit(session, lambda: ran.append("released savepoint"))
        assert ran == []  # released, not committed: the outer transaction may still roll back
        savepoint = session.begin_nested()
        session.add(item("rolled back"))
        session.flush()
        after_commit(session, lambda: ran.append("rolled-back savepoint"))
        savepoint.rollback()
        session.commit()
    assert ran == ["outer", "released savepoint"]


def test_a_failing_action_is_logged_and_the_rest_still_run(loop: FeedbackLoop,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    def fails() -> None:
        raise RuntimeError("broken side effect")

    with loop.session() as session:
        session.add(item("1"))
        session.flush()
        after_commit(session, fails)
        after_commit(session, lambda: ran.append("second"))
        with caplog.at_level(logging.ERROR, logger="core.after_commit"):
            session.commit()
    assert ran == ["second"]
    assert "an after-commit action failed" in caplog.text and "broken side effect" in caplog.text
    with loop.session() as session:
        assert session.scalar(select(func.count()).select_from(FeedbackItem)) == 1
