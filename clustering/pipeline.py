"""The theme pipeline: small swappable stages (clusterer, labeller) over precomputed embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clustering.base import Clusterer, Embeddings, Labels
from clustering.labels import ThemeLabel, label_themes
from clustering.spectral import SpectralThemeClusterer


@dataclass(frozen=True)
class ThemeResult:
    labels: Labels
    themes: dict[int, ThemeLabel]
    centroids: dict[int, Embeddings]


class ThemePipeline:
    def __init__(self, clusterer: Clusterer | None = None) -> None:
        self.clusterer: Clusterer = clusterer or SpectralThemeClusterer()

    def run(self, texts: Sequence[str], embeddings: Embeddings) -> ThemeResult:
        if len(texts) != len(embeddings):
            raise ValueError(f"{len(texts)} texts but {len(embeddings)} embeddings")
        labels = self.clusterer.fit_predict(embeddings) if len(texts) else np.zeros(0, dtype=np.int64)
        themes = label_themes(texts, embeddings, labels)
        centroids = {}
        for theme in themes:
            centroid = embeddings[labels == theme].mean(axis=0)
            centroids[theme] = (centroid / max(float(np.linalg.norm(centroid)), 1e-12)).astype(np.float32)
        return ThemeResult(labels=labels, themes=themes, centroids=centroids)
