"""People's placements as guidance: items nearly identical to one a person placed go where it went."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from clustering.base import Embeddings


def follow_placed(embeddings: Embeddings, placed: Mapping[int, int], threshold: float) -> dict[int, int]:
    """{row: target} for every row not placed itself whose most similar placed row is at least ``threshold``.

    ``placed`` maps a row a person put somewhere to where it went (any integer key: a theme id, a label).
    Only near-duplicates follow: on Banking77, wider rules (a neighbour vote, label propagation, metric
    learning) moved more items but did not raise NMI on them (bench/people_bench.py, bench/RESULTS.md).
    """
    rows = [row for row in placed if 0 <= row < len(embeddings)]
    if not rows:
        return {}
    anchors = embeddings[rows]
    targets = np.asarray([placed[row] for row in rows], dtype=np.int64)
    followers: dict[int, int] = {}
    for start in range(0, len(embeddings), 4096):
        similarity = embeddings[start:start + 4096] @ anchors.T
        best = similarity.argmax(axis=1)
        close = similarity[np.arange(len(best)), best] >= threshold
        for offset in np.flatnonzero(close).tolist():
            row = start + offset
            if row not in placed:
                followers[row] = int(targets[best[offset]])
    return followers
