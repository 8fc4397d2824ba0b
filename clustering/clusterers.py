"""Theme clusterers over normalised embeddings. Deterministic: no random state anywhere."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import AgglomerativeClustering

from clustering.base import UNTHEMED, Embeddings, Labels


class AgglomerativeThemeClusterer:
    """Average-linkage clustering cut at a cosine-distance threshold, so K is found, not given.

    Clusters smaller than ``min_size`` are dissolved; their items join the nearest theme when it is
    similar enough (``attach_similarity``), otherwise they stay unthemed.
    """

    def __init__(self, distance_threshold: float = 0.5, min_size: int = 5,
                 attach_similarity: float = 0.45) -> None:
        self.distance_threshold = distance_threshold
        self.min_size = min_size
        self.attach_similarity = attach_similarity

    def fit_predict(self, embeddings: Embeddings) -> Labels:
        count = len(embeddings)
        if count < max(2, self.min_size):
            return np.full(count, UNTHEMED, dtype=np.int64)
        raw = AgglomerativeClustering(
            n_clusters=None,
            distance_threshold=self.distance_threshold,
            metric="cosine",
            linkage="average",
        ).fit_predict(embeddings)
        return _settle_small_clusters(embeddings, np.asarray(raw, dtype=np.int64), self.min_size,
                                      self.attach_similarity)


def _settle_small_clusters(embeddings: Embeddings, raw: Labels, min_size: int,
                           attach_similarity: float) -> Labels:
    ids, sizes = np.unique(raw[raw != UNTHEMED], return_counts=True)
    big = ids[sizes >= min_size]
    labels = np.full(len(raw), UNTHEMED, dtype=np.int64)
    if len(big) == 0:
        return labels
    # Renumber the kept clusters by first appearance so the numbering is independent of sklearn's.
    order = sorted(big.tolist(), key=lambda cid: int(np.flatnonzero(raw == cid)[0]))
    centroids = np.vstack([embeddings[raw == cid].mean(axis=0) for cid in order])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    for new_id, cid in enumerate(order):
        labels[raw == cid] = new_id
    loose = np.flatnonzero(labels == UNTHEMED)
    if len(loose):
        similarity = embeddings[loose] @ centroids.T
        best = similarity.argmax(axis=1)
        near = similarity[np.arange(len(loose)), best] >= attach_similarity
        labels[loose[near]] = best[near]
    return labels
