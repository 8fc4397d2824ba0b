"""Each distinct text embedded once, and the worker's embedding batches recorded for ``/metrics``.

``embed_pending`` (core/themes/build.py) groups the pending items by their normalised-text hash
(core/themes/text_hash.py): a hash some item already has a vector for, from the same model, reuses it (other
channels, re-imports, copies of one message); every other hash is embedded once, from its first item's text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.models import EmbeddingBatch, FeedbackItem
from core.types import Embedder

# Hashes per IN (...) lookup: well under SQLite's and PostgreSQL's parameter limits.
LOOKUP_CHUNK = 500
# Batches kept for the throughput gauge; older rows are deleted as new ones come.
BATCHES_KEPT = 1000
# The gauge's window: the most recent batches of each model.
THROUGHPUT_WINDOW = 50


def stored_vectors(session: Session, hashes: Iterable[str], model: str) -> dict[str, bytes]:
    """{text hash: a stored embedding of a text with that hash by ``model``} for the hashes that have one."""
    wanted = sorted(set(hashes))
    found: dict[str, bytes] = {}
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = wanted[start:start + LOOKUP_CHUNK]
        rows = session.execute(
            select(FeedbackItem.text_hash, FeedbackItem.embedding)
            .where(FeedbackItem.text_hash.in_(chunk), FeedbackItem.embedding_model == model,
                   FeedbackItem.embedding.is_not(None)))
        for hash_, blob in rows:
            if hash_ is not None and blob is not None:
                found.setdefault(hash_, blob)
    return found


class BatchTimer:
    """A progress callback that also times each batch the embedder reports, for ``record``.

    An embedder that never reports progress yields one batch for the whole call (``finish``).
    """

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self.progress = progress
        self.batches: list[tuple[int, float]] = []
        self._last = time.perf_counter()
        self._reported = 0

    def __call__(self, texts: int) -> None:
        now = time.perf_counter()
        self.batches.append((texts, now - self._last))
        self._last = now
        self._reported += texts
        if self.progress is not None:
            self.progress(texts)

    def finish(self, texts: int) -> None:
        if texts > self._reported:
            self(texts - self._reported)


def embed_distinct(embedder: Embedder, texts: Sequence[str], timer: BatchTimer) -> np.ndarray:
    vectors = np.asarray(embedder.embed(list(texts), progress=timer), dtype=np.float32)
    timer.finish(len(texts))
    return vectors


def record_batches(session: Session, model: str, batches: Sequence[tuple[int, float]]) -> None:
    now = utcnow()
    session.add_all(EmbeddingBatch(model=model, texts=texts, seconds=seconds, finished_at=now)
                    for texts, seconds in batches if texts > 0)
    session.flush()
    newest = session.scalar(select(func.max(EmbeddingBatch.id)))
    if newest is not None and newest > BATCHES_KEPT:
        session.execute(delete(EmbeddingBatch).where(EmbeddingBatch.id <= newest - BATCHES_KEPT))


@dataclass(frozen=True)
class Throughput:
    model: str
    texts: int
    seconds: float

    @property
    def texts_per_second(self) -> float:
        return self.texts / self.seconds if self.seconds > 0 else 0.0


def recent_throughput(session: Session, window: int = THROUGHPUT_WINDOW) -> list[Throughput]:
    """Texts per second over each model's ``window`` most recent batches (time inside the embedder only)."""
    models = session.scalars(select(EmbeddingBatch.model).distinct().order_by(EmbeddingBatch.model)).all()
    figures = []
    for model in models:
        recent = (select(EmbeddingBatch.texts, EmbeddingBatch.seconds).where(EmbeddingBatch.model == model)
                  .order_by(EmbeddingBatch.id.desc()).limit(window).subquery())
        texts, seconds = session.execute(select(func.sum(recent.c.texts), func.sum(recent.c.seconds))).one()
        figures.append(Throughput(model=model, texts=int(texts or 0), seconds=float(seconds or 0.0)))
    return figures
