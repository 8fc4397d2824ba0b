"""The stage interfaces of the theme pipeline; any object with these methods can stand in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # labels.py imports this module: only the type checker may look the other way
    from clustering.labels import ThemeLabel

Embeddings = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int64]

UNTHEMED = -1


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, one row per text."""

    name: str

    def embed(self, texts: Sequence[str]) -> Embeddings: ...


class Clusterer(Protocol):
    """Groups normalised embeddings: one label per row, ``UNTHEMED`` (-1) for items left out.

    scikit-learn's clusterer shape: ``fit(X)`` sets ``labels_`` and ``fit_predict(X)`` returns them, which
    ``sklearn.base.ClusterMixin`` derives from ``fit``. The pipeline only needs ``fit_predict``, so any
    scikit-learn clusterer fits, and so does an object with nothing but that method.
    """

    def fit_predict(self, X: Embeddings, /) -> Labels: ...


class Vectorizer(Protocol):
    """Counts terms per document, like scikit-learn's ``CountVectorizer``."""

    def fit_transform(self, raw_documents: Iterable[str], /) -> Any: ...

    def get_feature_names_out(self) -> Any: ...


class Labeller(Protocol):
    """Names the themes of a clustering: a ``ThemeLabel`` per theme id (``UNTHEMED`` gets none)."""

    def label(self, texts: Sequence[str], embeddings: Embeddings, labels: Labels) -> dict[int, ThemeLabel]: ...
