"""The stage interfaces of the theme pipeline; any object with these methods can stand in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

Embeddings = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int64]

UNTHEMED = -1


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, one row per text."""

    name: str

    def embed(self, texts: Sequence[str]) -> Embeddings: ...


class Clusterer(Protocol):
    """Groups normalised embeddings: one label per row, ``UNTHEMED`` (-1) for items left out."""

    def fit_predict(self, embeddings: Embeddings) -> Labels: ...
