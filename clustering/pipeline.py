"""The theme pipeline: small swappable stages (clusterer, labeller) over precomputed embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clustering.base import Clusterer, Embeddings, Labeller, Labels
from clustering.labels import ThemeLabel, ThemeLabeller
from clustering.spectral import SpectralThemeClusterer
from clustering.vectors import unit


@dataclass(frozen=True)
class ThemeResult:
    labels: Labels
    themes: dict[int, ThemeLabel]
    centroids: dict[int, Embeddings]


class ThemePipeline:
    """Cluster, then label. ``None`` for a stage: the default one (``SpectralThemeClusterer``,
    ``ThemeLabeller``); the vectorizer behind the keywords is the labeller's, so swap it there."""

    def __init__(self, clusterer: Clusterer | None = None, labeller: Labeller | None = None) -> None:
        self.clusterer: Clusterer = clusterer or SpectralThemeClusterer()
        self.labeller: Labeller = labeller or ThemeLabeller()

    def run(self, texts: Sequence[str], embeddings: Embeddings) -> ThemeResult:
        if len(texts) != len(embeddings):
            raise ValueError(f"{len(texts)} texts but {len(embeddings)} embeddings")
        labels = self.clusterer.fit_predict(embeddings) if len(texts) else np.zeros(0, dtype=np.int64)
        themes = self.labeller.label(texts, embeddings, labels)
        centroids = {theme: unit(embeddings[labels == theme].mean(axis=0)).astype(np.float32) for theme in themes}
        return ThemeResult(labels=labels, themes=themes, centroids=centroids)
