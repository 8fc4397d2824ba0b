"""Areas: themes grouped into a second, coarser level, with the number of areas found from the data.

Why this shape: two themes belong to one area when their items are each other's neighbours far more often
than chance predicts. The items' k-nearest-neighbour graph, summed per theme, gives a theme-by-theme graph
whose edge weights count such neighbourhoods; grouping themes to maximise that graph's modularity (edges
inside groups against what the groups' degrees predict) stops by itself when no merge adds anything, so
no count and no threshold is given. Modularity's own null model sets the resolution, the same on every
corpus.

Deterministic and independent of input order: the items' neighbour graph is built on rows in a canonical
order (by their values), the merges take the best gain with ties broken by the smaller theme ids, and
areas are numbered by their first theme's first appearance.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sparse
from sklearn.base import BaseEstimator

from clustering.base import UNTHEMED, Embeddings, Labels
from clustering.spectral import canonical_order, knn_graph, nearest_neighbours


class ThemeAreaGrouper(BaseEstimator):  # type: ignore[misc]
    """Groups themes into areas: ``fit(X, theme_labels)`` sets ``area_of_theme_`` ({theme: area}) and
    ``labels_`` (one area per row, ``UNTHEMED`` where the row has no theme).

    Above ``max_exact`` themed items, the neighbour graph is built on every n-th item of the canonical
    order, which keeps time and memory bounded at scale. ``resolution`` is modularity's (1: the standard
    null model); larger values give more, smaller areas.

    A scikit-learn estimator (``get_params``, ``set_params``, ``clone`` work); nothing in it is random.
    """

    area_of_theme_: dict[int, int]
    labels_: Labels

    def __init__(self, n_neighbors: int = 20, resolution: float = 1.0, max_exact: int = 12_000) -> None:
        self.n_neighbors = n_neighbors
        self.resolution = resolution
        self.max_exact = max_exact

    def fit(self, X: Embeddings, y: Labels) -> ThemeAreaGrouper:
        """Group the themes of ``y`` (one theme id per row of ``X``, ``UNTHEMED`` for none) into areas."""
        theme_labels = np.asarray(y, dtype=np.int64)
        themes = sorted(set(theme_labels[theme_labels != UNTHEMED].tolist()))
        self.area_of_theme_ = {}
        if len(themes) > 1:
            weights = self._theme_graph(X, theme_labels, themes)
            groups = modularity_groups(weights, self.resolution)
        else:
            groups = np.zeros(len(themes), dtype=np.int64)
        # Areas numbered by the first row of any of their themes, so the numbering follows the input.
        first_row = {theme: int(np.flatnonzero(theme_labels == theme)[0]) for theme in themes}
        area_first: dict[int, int] = {}
        for theme, group in zip(themes, groups.tolist(), strict=True):
            area_first[group] = min(area_first.get(group, first_row[theme]), first_row[theme])
        renumber = {group: rank for rank, group in enumerate(sorted(area_first, key=area_first.__getitem__))}
        self.area_of_theme_ = {theme: renumber[group] for theme, group in zip(themes, groups.tolist(), strict=True)}
        self.labels_ = np.asarray([self.area_of_theme_.get(int(t), UNTHEMED) for t in theme_labels.tolist()],
                                  dtype=np.int64)
        return self

    def fit_predict(self, X: Embeddings, y: Labels) -> Labels:
        """``fit(X, y).labels_``: one area id per row, ``UNTHEMED`` (-1) where the row has no theme."""
        return self.fit(X, y).labels_

    def _theme_graph(self, embeddings: Embeddings, theme_labels: Labels, themes: list[int]) -> np.ndarray:
        """Theme-by-theme sums of the themed items' neighbour-graph weights (diagonal: inside a theme)."""
        themed = np.flatnonzero(theme_labels != UNTHEMED)
        themed = themed[canonical_order(embeddings[themed])]  # by their values, as the clusterer orders rows
        if len(themed) > self.max_exact:
            themed = themed[::int(np.ceil(len(themed) / self.max_exact))]
        index = {theme: position for position, theme in enumerate(themes)}
        rows = np.asarray([index[int(t)] for t in theme_labels[themed].tolist()], dtype=np.int64)
        if len(themed) < 3:
            return np.diag(np.bincount(rows, minlength=len(themes)).astype(np.float64))
        neighbours, similarities = nearest_neighbours(np.ascontiguousarray(embeddings[themed]),
                                                      min(self.n_neighbors, len(themed) - 1))
        graph = knn_graph(neighbours, similarities)
        one_hot = sparse.csr_matrix((np.ones(len(rows)), (rows, np.arange(len(rows)))),
                                    shape=(len(themes), len(rows)))
        return np.asarray((one_hot @ graph @ one_hot.T).toarray(), dtype=np.float64)


def modularity_groups(weights: np.ndarray, resolution: float = 1.0) -> Labels:
    """Greedy agglomeration (Clauset-Newman-Moore) of a weighted graph's nodes, merging the pair that adds
    most modularity until no merge adds any; one group number per node (0..n-1 by first node)."""
    weights = np.array(weights, dtype=np.float64)
    count = len(weights)
    total = weights.sum()
    group = np.arange(count)
    if count < 2 or total <= 0:
        return np.zeros(count, dtype=np.int64)
    degree = weights.sum(axis=1)
    alive = np.ones(count, dtype=bool)
    while alive.sum() > 1:
        gain = weights / total - resolution * np.outer(degree, degree) / total**2
        np.fill_diagonal(gain, -np.inf)
        gain[~alive] = -np.inf
        gain[:, ~alive] = -np.inf
        best = int(np.argmax(gain))  # the first maximum in row order: the smallest ids win ties
        i, j = divmod(best, count)
        if gain[i, j] <= 0:
            break
        keep, gone = min(i, j), max(i, j)
        weights[keep] += weights[gone]
        weights[:, keep] += weights[:, gone]
        weights[gone] = 0.0
        weights[:, gone] = 0.0
        degree[keep] += degree[gone]
        degree[gone] = 0.0
        alive[gone] = False
        group[group == gone] = keep
    _, numbered = np.unique(group, return_inverse=True)
    return np.asarray(numbered, dtype=np.int64)
