"""Vector helpers shared by every stage, so each one normalises and links items in exactly the same way."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import AgglomerativeClustering

from clustering.base import Labels

# A floor under norms: a zero vector stays zero instead of turning into NaNs; any real norm is far above it.
MIN_NORM = 1e-12


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to length one, in its own dtype (a zero vector stays zero)."""
    return np.asarray(vector / max(float(np.linalg.norm(vector)), MIN_NORM))


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Every row scaled to length one, in the matrix's own dtype (zero rows stay zero)."""
    return np.asarray(matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), MIN_NORM))


def average_linkage(points: np.ndarray, distance_threshold: float) -> Labels:
    """Average-linkage clusters cut at a cosine distance, so the number of clusters is found, not given."""
    clustering = AgglomerativeClustering(n_clusters=None, distance_threshold=distance_threshold, metric="cosine",
                                         linkage="average")
    return np.asarray(clustering.fit_predict(points), dtype=np.int64)
