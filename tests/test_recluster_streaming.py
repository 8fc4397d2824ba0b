"""Re-clustering reads embeddings in chunks and writes memberships in batches (for a million items:
bench/million_bench.py); the result must not depend on the chunk sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from core.loop import FeedbackLoop
from core.models import FeedbackItem, ThemeMembership
from core.themes import build
from tests.support.loops import make_loop
from tests.support.themes import CHECKOUT, LOGIN, build_themes


def memberships(loop: FeedbackLoop) -> list[tuple[int, int, str, float | None]]:
    with loop.session() as session:
        return [(m.item_id, m.theme_id, m.source, None if m.score is None else round(m.score, 5))
                for m in session.scalars(select(ThemeMembership).order_by(ThemeMembership.item_id))]


def test_small_chunks_and_batches_give_the_same_themes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = make_loop(f"sqlite:///{tmp_path / 'whole.db'}")
    build_themes(whole, CHECKOUT + LOGIN)
    monkeypatch.setattr(build, "EMBEDDING_CHUNK", 3)
    monkeypatch.setattr(build, "MEMBERSHIP_BATCH", 4)
    chunked = make_loop(f"sqlite:///{tmp_path / 'chunked.db'}")
    build_themes(chunked, CHECKOUT + LOGIN)
    try:
        expected = memberships(whole)
        assert len(expected) == 20 and len({theme for _, theme, _, _ in expected}) == 2
        assert memberships(chunked) == expected
        with chunked.session() as session:
            ids, texts, vectors = build._embedded_items(session, "hash")
            stored = session.scalars(select(FeedbackItem).order_by(FeedbackItem.id)).all()
            assert ids == [item.id for item in stored] and texts == [item.text_redacted for item in stored]
            assert np.array_equal(vectors, np.vstack([np.frombuffer(item.embedding or b"", dtype=np.float32)
                                                      for item in stored]))
    finally:
        whole.close()
        chunked.close()


def test_rows_committed_between_the_count_and_the_read_are_kept(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    loop = make_loop(f"sqlite:///{tmp_path / 'late.db'}")
    build_themes(loop, CHECKOUT + LOGIN)
    monkeypatch.setattr(build, "EMBEDDING_CHUNK", 6)
    real_scalar = build.Session.scalar
    calls = {"count": 0}

    def short_count(self: build.Session, *args: object, **kwargs: object) -> object:
        found = real_scalar(self, *args, **kwargs)  # type: ignore[arg-type]
        calls["count"] += 1
        return int(found) - 5 if calls["count"] == 1 else found  # as if 5 rows arrived after the count

    monkeypatch.setattr(build.Session, "scalar", short_count)
    try:
        with loop.session() as session:
            ids, _, vectors = build._embedded_items(session, "hash")
        assert len(ids) == 20 and vectors.shape[0] == 20
        with loop.session() as session:
            last = session.scalars(select(FeedbackItem).order_by(FeedbackItem.id.desc())).first()
            assert last is not None and np.array_equal(vectors[-1], np.frombuffer(last.embedding or b"",
                                                                                   dtype=np.float32))
    finally:
        loop.close()
