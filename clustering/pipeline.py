"""The theme pipeline: small swappable stages (clusterer, labeller, area grouper) over precomputed embeddings."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from clustering.areas import ThemeAreaGrouper
from clustering.base import UNTHEMED, Clusterer, Embeddings, Labeller, Labels
from clustering.labels import ThemeLabel, ThemeLabeller
from clustering.spectral import SpectralThemeClusterer
from clustering.vectors import unit


class AreaGrouper(Protocol):
    """Groups themes into areas: ``fit(X, theme_labels)`` sets ``area_of_theme_`` ({theme: area})."""

    area_of_theme_: dict[int, int]

    def fit(self, X: Embeddings, y: Labels, /) -> object: ...


@runtime_checkable
class AreaLabeller(Protocol):
    """A labeller that also names areas from their themes (``ThemeLabeller.label_areas``)."""

    def label_areas(self, texts: Sequence[str], embeddings: Embeddings, labels: Labels,
                    area_of_theme: Mapping[int, int], theme_titles: Collection[str], /) -> dict[int, ThemeLabel]: ...


@dataclass(frozen=True)
class ThemeResult:
    labels: Labels
    themes: dict[int, ThemeLabel]
    centroids: dict[int, Embeddings]
    # The second level: {theme: area} and each area's name, keywords and quotes.
    area_of_theme: dict[int, int] = field(default_factory=dict)
    areas: dict[int, ThemeLabel] = field(default_factory=dict)

    def area_labels(self) -> Labels:
        """One area per row, ``UNTHEMED`` (-1) where the row has no theme."""
        return np.asarray([self.area_of_theme.get(int(t), UNTHEMED) for t in self.labels.tolist()], dtype=np.int64)


class ThemePipeline:
    """Cluster, label, group into areas, label the areas. ``None`` for a stage: the default one
    (``SpectralThemeClusterer``, ``ThemeLabeller``, ``ThemeAreaGrouper``); the vectorizer behind the keywords
    is the labeller's, so swap it there. Areas are named by the same labeller as themes: by its ``label_areas``
    where it has one (what the area's themes share, no theme's name), else by its ``label``."""

    def __init__(self, clusterer: Clusterer | None = None, labeller: Labeller | None = None,
                 grouper: AreaGrouper | None = None) -> None:
        self.clusterer: Clusterer = clusterer or SpectralThemeClusterer()
        self.labeller: Labeller = labeller or ThemeLabeller()
        self.grouper: AreaGrouper = grouper or ThemeAreaGrouper()

    def run(self, texts: Sequence[str], embeddings: Embeddings) -> ThemeResult:
        if len(texts) != len(embeddings):
            raise ValueError(f"{len(texts)} texts but {len(embeddings)} embeddings")
        labels = self.clusterer.fit_predict(embeddings) if len(texts) else np.zeros(0, dtype=np.int64)
        themes = self.labeller.label(texts, embeddings, labels)
        centroids = {theme: unit(embeddings[labels == theme].mean(axis=0)).astype(np.float32) for theme in themes}
        area_of_theme: dict[int, int] = {}
        if themes:
            self.grouper.fit(embeddings, labels)
            area_of_theme = {theme: area for theme, area in self.grouper.area_of_theme_.items() if theme in themes}
        result = ThemeResult(labels=labels, themes=themes, centroids=centroids, area_of_theme=area_of_theme)
        areas: dict[int, ThemeLabel] = {}
        if area_of_theme and isinstance(self.labeller, AreaLabeller):
            areas = self.labeller.label_areas(texts, embeddings, labels, area_of_theme,
                                              [info.title for info in themes.values()])
        elif area_of_theme:  # a labeller that knows only themes names each area like one
            areas = self.labeller.label(texts, embeddings, result.area_labels())
        return ThemeResult(labels=labels, themes=themes, centroids=centroids, area_of_theme=area_of_theme,
                           areas=areas)
