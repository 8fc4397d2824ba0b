"""Suggestions after a move: which of a theme's remaining items look like the ones a person moved out.

A person moves or splits a few items out of a mixed theme; the theme page then offers the remaining items
that look like them ("14 more look like these: move them too?"), and the person accepts or rejects each.
This module only ranks: the remaining items' embeddings in, a score per item, an order and a count of
the confident ones out. Pure numpy; the database side is core/themes/suggestions.py.

Several rankings were tried (bench/suggestions_bench.py, "Suggestions after moves" in bench/RESULTS.md);
``SCORERS`` keeps them so the bench can compare them, ``DEFAULT_SCORER`` is the one shipped: label
spreading over the theme's nearest-neighbour graph, because a mixed theme's intents are chains of
look-alikes more than balls around a centre (best or tied in every row of the bench). The count of confident
ones needs a scale that means the same in every theme, so it comes from the re-centred contrast of
clustering/steering.py (closer to the moved side than to the rest by a cosine margin).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sparse

from clustering.spectral import knn_graph, nearest_neighbours
from clustering.vectors import unit, unit_rows

# How far (cosine) an item must be closer to the moved items' centre than to the rest of its theme to be
# counted as "looks like these" (the same margin as clustering/steering.py's moves).
CONFIDENT_MARGIN = 0.05
# Rounds of re-centring on the items that already look like the moved ones (clustering/steering.py does 2).
ROUNDS = 2
# A target theme's own items say what the moved items went to join; its centre counts this much beside the
# moved items' (they are the person's own choice, so they weigh more).
TARGET_WEIGHT = 0.5
# Rejected items are known negatives: the centre of "the rest" leans towards them by this weight.
REJECTED_WEIGHT = 1.0
# Label spreading: each item's nearest neighbours in the theme, and how much of its score comes from them
# rather than from its seed (+1 the moved side, -1 a rejected item, 0 the others). On the bench, k 5 to 20
# and 0.5 to 0.9 were within 0.01 of each other.
SPREAD_NEIGHBOURS = 10
SPREAD_ALPHA = 0.8
SPREAD_STEPS = 30

# (remaining rows, the moved side's centre, the moved rows, which remaining rows were rejected) -> scores
Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Ranking:
    """Per remaining row: ``scores`` (higher: more like the moved items; rejected rows ``-inf``);
    ``order``: the rows not rejected, best first; ``confident``: how many rows clear the contrast margin,
    the "N more look like these" figure (the first ``confident`` rows of ``order`` are the ones announced)."""

    scores: np.ndarray
    order: np.ndarray
    confident: int

    def top(self, limit: int) -> list[int]:
        return [int(row) for row in self.order[:limit]]


def _positive_centre(moved: np.ndarray, target: np.ndarray | None) -> np.ndarray:
    centre = unit(moved.mean(axis=0))
    if target is not None and len(target):
        centre = unit(centre + TARGET_WEIGHT * unit(target.mean(axis=0)))
    return centre


def _rest_centre(rest: np.ndarray, rejected: np.ndarray) -> np.ndarray:
    centre = unit(rest.mean(axis=0)) if len(rest) else np.zeros(rest.shape[1], dtype=rest.dtype)
    if len(rejected):
        centre = unit(centre + REJECTED_WEIGHT * unit(rejected.mean(axis=0)))
    return centre


def score_centroid(remaining: np.ndarray, positive: np.ndarray, moved: np.ndarray,
                   rejected: np.ndarray) -> np.ndarray:
    """Similarity to the moved items' centre (the theme's own make-up ignored)."""
    del moved, rejected
    return np.asarray(remaining @ positive)


def score_contrast(remaining: np.ndarray, positive: np.ndarray, moved: np.ndarray,
                   rejected: np.ndarray) -> np.ndarray:
    """Similarity to the moved items' centre minus similarity to the centre of the theme's remaining items."""
    del moved
    return np.asarray(remaining @ positive - remaining @ _rest_centre(remaining, remaining[rejected]))


def score_rounds(remaining: np.ndarray, positive: np.ndarray, moved: np.ndarray,
                 rejected: np.ndarray) -> np.ndarray:
    """The contrast, re-centred ``ROUNDS`` times: items already past the margin join the moved side, and the
    rest's centre is taken without them (the first "rest" still holds every look-alike, which is timid)."""
    del moved
    rejected_rows = remaining[rejected]
    moved_side = np.zeros(len(remaining), dtype=bool)
    scores = np.zeros(len(remaining), dtype=np.float32)
    centre = positive
    for _ in range(ROUNDS):
        rest_centre = _rest_centre(remaining[~moved_side], rejected_rows)
        scores = np.asarray(remaining @ centre - remaining @ rest_centre)
        moved_side = scores > CONFIDENT_MARGIN
        moved_side[rejected] = False
        if moved_side.all() or not moved_side.any():
            break
        centre = unit(positive * 2 + unit(remaining[moved_side].mean(axis=0)))  # the person's picks weigh more
    return scores


def score_spread(remaining: np.ndarray, positive: np.ndarray, moved: np.ndarray,
                 rejected: np.ndarray) -> np.ndarray:
    """Label spreading over the theme's nearest-neighbour graph, with the moved side's centre and each moved
    item as nodes of it: from those (+1) and from the rejected items (-1), so look-alikes of look-alikes count
    too. Sparse, in blocks: a theme of many thousands fits."""
    graph_points = np.vstack([positive[None, :], moved, remaining]).astype(np.float32)
    seeded = 1 + len(moved)
    neighbours, similarities = nearest_neighbours(graph_points, SPREAD_NEIGHBOURS)
    graph = knn_graph(neighbours, similarities)
    inverse_root_degree = 1.0 / np.sqrt(np.maximum(np.asarray(graph.sum(axis=1)).ravel(), 1e-12))
    scale = sparse.diags(inverse_root_degree)
    normalised = (scale @ graph @ scale).tocsr()
    seeds = np.zeros(len(graph_points), dtype=np.float64)
    seeds[:seeded] = 1.0
    seeds[seeded:][rejected] = -1.0
    spread = seeds.copy()
    for _ in range(SPREAD_STEPS):
        spread = SPREAD_ALPHA * (normalised @ spread) + (1 - SPREAD_ALPHA) * seeds
    return np.asarray(spread[seeded:])


SCORERS: dict[str, Scorer] = {"centroid": score_centroid, "contrast": score_contrast, "rounds": score_rounds,
                              "spread": score_spread}
DEFAULT_SCORER = "spread"


def rank_like_moved(remaining: np.ndarray, moved: np.ndarray, target: np.ndarray | None = None,
                    rejected: Collection[int] = (), scorer: str = DEFAULT_SCORER) -> Ranking:
    """Rank a theme's ``remaining`` rows by how much more they look like ``moved`` than like the rest.

    ``remaining``: embeddings of the source theme's items still there; ``moved``: embeddings of the items a
    person moved out of it (at least one); ``target``: embeddings of the target theme's other items, when it
    had any; ``rejected``: rows of ``remaining`` a person already said do not belong with the moved ones
    (never suggested, and they steer the ranking away from what they look like). ``scorer`` picks the
    order (one of ``SCORERS``); the confident count is always the re-centred contrast's, on the cosine scale.
    """
    if len(moved) == 0:
        raise ValueError("suggestions need at least one moved item")
    if scorer not in SCORERS:
        raise ValueError(f"unknown scorer {scorer!r}; one of {sorted(SCORERS)}")
    remaining = unit_rows(np.asarray(remaining, dtype=np.float32))
    if len(remaining) == 0:
        return Ranking(scores=np.zeros(0, dtype=np.float32), order=np.zeros(0, dtype=np.int64), confident=0)
    moved = unit_rows(np.asarray(moved, dtype=np.float32))
    target = unit_rows(np.asarray(target, dtype=np.float32)) if target is not None and len(target) else None
    rejected_mask = np.zeros(len(remaining), dtype=bool)
    rejected_mask[[row for row in rejected if 0 <= row < len(remaining)]] = True
    positive = _positive_centre(moved, target)
    scores = np.asarray(SCORERS[scorer](remaining, positive, moved, rejected_mask), dtype=np.float64)
    scores[rejected_mask] = -np.inf
    # Ties broken by row, so the same theme always gets the same suggestions.
    order = np.lexsort((np.arange(len(scores)), -scores))
    order = order[~rejected_mask[order]]
    # How many is counted on the cosine scale (the spread's scores have no fixed one), the order is kept.
    contrast = score_rounds(remaining, positive, moved, rejected_mask)
    confident = int((contrast[~rejected_mask] > CONFIDENT_MARGIN).sum())
    return Ranking(scores=scores, order=order.astype(np.int64), confident=confident)
