"""Sentence-transformers embedder; the model is loaded on first use, never at import."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from clustering.base import Embeddings


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

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> Embeddings:
        """Embed in batches; ``progress(n)`` is called after each batch with its size."""
        model = self._load()
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start:start + self.batch_size])
            vectors = model.encode(batch, batch_size=self.batch_size, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=False)
            chunks.append(np.asarray(vectors, dtype=np.float32))
            if progress is not None:
                progress(len(batch))
        if not chunks:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack(chunks)

