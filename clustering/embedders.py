"""Sentence-transformers embedder; the model is loaded on first use, never at import."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from clustering.base import Embeddings

Progress = Callable[[int], None]


def length_batches(texts: Sequence[str], batch_size: int) -> Iterator[npt.NDArray[np.intp]]:
    """Row indices of ``texts`` in batches of similar length, longest first.

    sentence-transformers sorts by length only inside one ``encode`` call, so encoding chunk after chunk in
    arrival order pads every short text to its chunk's longest one. Sorting the whole set first, by the same
    key (characters, longest first), gives each call the batch one big ``encode`` would have made.
    """
    order = np.argsort([-len(text) for text in texts], kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


def embed_by_length(texts: Sequence[str], batch_size: int, encode: Callable[[list[str]], np.ndarray],
                    progress: Progress | None = None) -> Embeddings:
    """``encode`` on length-grouped batches, rows put back in the order of ``texts``; ``progress(n)`` after
    each batch with its size."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    rows: np.ndarray | None = None
    for batch in length_batches(texts, batch_size):
        vectors = np.asarray(encode([texts[row] for row in batch]), dtype=np.float32)
        if rows is None:
            rows = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
        rows[batch] = vectors
        if progress is not None:
            progress(len(batch))
    assert rows is not None
    return rows


def normalised_rows(vectors: np.ndarray) -> Embeddings:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


class SentenceTransformerEmbedder:
    """Embeds with a local sentence-transformers model directory (no downloads)."""

    def __init__(self, model_path: str, name: str | None = None, batch_size: int = 64,
                 device: str | None = None) -> None:
        self.model_path = model_path
        self.name = name or model_path
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self.model_path, device=self.device or "cpu")
        return self._model

    def _encode(self, batch: list[str]) -> np.ndarray:
        return np.asarray(self._load().encode(batch, batch_size=self.batch_size, normalize_embeddings=True,
                                              convert_to_numpy=True, show_progress_bar=False))

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> Embeddings:
        """Embed in length-grouped batches; ``progress(n)`` is called after each batch with its size."""
        return embed_by_length(texts, self.batch_size, self._encode, progress)
