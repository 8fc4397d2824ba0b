"""Theme clusterers over normalised embeddings. Deterministic: no random state anywhere."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin

from clustering.base import UNTHEMED, Embeddings, Labels
from clustering.linkage import average_linkage
from clustering.vectors import unit_rows


class AgglomerativeThemeClusterer(ClusterMixin, BaseEstimator):  # type: ignore[misc]
    """Average-linkage clustering cut at a cosine-distance threshold, so K is found, not given.

    Clusters smaller than ``min_size`` are dissolved; their items join the nearest theme when it is
    similar enough (``attach_similarity``), otherwise they stay unthemed.

    A scikit-learn estimator (``get_params``, ``set_params``, ``clone`` work). There is no ``random_state``:
    nothing in it is random, so the same embeddings always give the same labels.
    """

    labels_: Labels

    def __init__(self, distance_threshold: float = 0.5, min_size: int = 5,
                 attach_similarity: float = 0.45) -> None:
        self.distance_threshold = distance_threshold
        self.min_size = min_size
        self.attach_similarity = attach_similarity

    def fit(self, X: Embeddings, y: object = None) -> AgglomerativeThemeClusterer:
        """Cluster the rows of ``X`` (unit vectors) into ``labels_``; ``y`` is ignored."""
        count = len(X)
        if count < max(2, self.min_size):
            self.labels_ = np.full(count, UNTHEMED, dtype=np.int64)
            return self
        raw = average_linkage(X, self.distance_threshold)
        self.labels_ = _settle_small_clusters(X, raw, self.min_size, self.attach_similarity)
        return self

    def fit_predict(self, X: Embeddings, y: object = None) -> Labels:
        """``fit(X).labels_``: one theme id per row, ``UNTHEMED`` (-1) for items left out."""
        return self.fit(X).labels_


def _settle_small_clusters(embeddings: Embeddings, raw: Labels, min_size: int,
                           attach_similarity: float) -> Labels:
    ids, sizes = np.unique(raw[raw != UNTHEMED], return_counts=True)
    big = ids[sizes >= min_size]
    labels = np.full(len(raw), UNTHEMED, dtype=np.int64)
    if len(big) == 0:
        return labels
    # Renumber the kept clusters by first appearance so the numbering is independent of sklearn's.
    order = sorted(big.tolist(), key=lambda cid: int(np.flatnonzero(raw == cid)[0]))
    centroids = unit_rows(np.vstack([embeddings[raw == cid].mean(axis=0) for cid in order]))
    for new_id, cid in enumerate(order):
        labels[raw == cid] = new_id
    loose = np.flatnonzero(labels == UNTHEMED)
    if len(loose):
        similarity = embeddings[loose] @ centroids.T
        best = similarity.argmax(axis=1)
        near = similarity[np.arange(len(loose)), best] >= attach_similarity
        labels[loose[near]] = best[near]
    return labels
