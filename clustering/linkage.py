"""Average linkage cut at a cosine distance: clusters whose number is found, not given.

Why not scipy's tree over every pair alone: it needs all n²/2 distances (576 MB at 12,000 points) and
O(n²) time even when the cut only ever merges close pairs. Two facts make a sparse computation exact:
(1) clusters whose average distance is below the threshold hold at least one pair of points that close, so
only clusters joined by such pairs can ever merge below it; (2) for unit vectors the average cosine distance
of two clusters is 1 - (sum of A) . (sum of B) / (|A| |B|), so it is known from the clusters' sums. Average
linkage is reducible, so merging every pair of mutual nearest clusters at once gives the same clusters as
merging one pair at a time. On the six grain corpora (bench/grain_bench.py) the labels are those of scipy's
tree, item for item; the fine cut of 5,000 items takes 0.14-0.24 s instead of 0.6-0.9 s.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sparse
from scipy.cluster import hierarchy
from scipy.sparse.csgraph import connected_components

from clustering.base import Labels
from clustering.vectors import cosine_distances_condensed, similarity_blocks, unit_rows

# Close pairs kept, as a share of all pairs: above it (one tight blob) the sparse path would hold more than
# the condensed matrix does, and scipy's tree takes over.
MAX_CLOSE_SHARE = 0.125
# How much wider than the threshold the similarities are first compared, against rounding.
CANDIDATE_SLACK = 1e-9
# Condensed distances scanned at once when looking for the pairs below a threshold (64 MB of float64).
SCAN_CHUNK = 8_000_000
# When one linked group holds at least this share of the points, linking the groups apart saves little
# (at 0.7, at most half the work) and its distances, copied out, would take up to half the memory again.
SPLIT_LARGEST_SHARE = 0.7


def average_linkage(points: np.ndarray, distance_threshold: float) -> Labels:
    """Average-linkage clusters cut at a cosine distance, so the number of clusters is found, not given.

    Pairs merge while their average distance is below the threshold (scikit-learn's ``distance_threshold``);
    clusters are numbered by their first row.
    """
    count = len(points)
    if count < 2:
        return np.zeros(count, dtype=np.int64)
    rows = unit_rows(np.asarray(points, dtype=np.float64))
    pairs = close_pairs(rows, distance_threshold, int(MAX_CLOSE_SHARE * count * (count - 1) / 2) + 1)
    if pairs is None:
        return _tree_linkage(rows, distance_threshold)
    return numbered_by_first_row(merge_mutual_nearest(rows, *pairs, distance_threshold))


def close_pairs(rows: np.ndarray, distance_threshold: float,
                limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(first, second, distance) of every pair of unit rows closer than the threshold, first < second, from
    the blocks ``cosine_distances_condensed`` reads too; None once more than ``limit`` are found."""
    firsts, seconds, distances = [], [], []
    found = 0
    for start, block in similarity_blocks(rows):
        # A comparison on the similarities first (a little wide, so that rounding loses no pair), then the
        # distances exactly as the condensed matrix has them, on the few pairs that pass.
        first, second = np.nonzero(block > 1.0 - distance_threshold - CANDIDATE_SLACK)
        later = second > first  # block row r is point start + r, block column c is point start + c
        first, second = first[later], second[later]
        distance = np.clip(1.0 - block[first, second], 0.0, 2.0)
        close = distance < distance_threshold
        first, second = first[close], second[close]
        found += len(first)
        if found > limit:
            return None
        distances.append(distance[close])
        firsts.append(first + start)
        seconds.append(second + start)
    if not firsts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return (np.concatenate(firsts).astype(np.int64), np.concatenate(seconds).astype(np.int64),
            np.concatenate(distances))


def merge_mutual_nearest(rows: np.ndarray, first: np.ndarray, second: np.ndarray, distance: np.ndarray,
                         distance_threshold: float) -> Labels:
    """The cluster (its surviving point) of every row once no two clusters are closer than the threshold.

    Each round, every cluster finds its nearest cluster among those it has a close pair with (ties: the
    lower number); mutual nearest pairs merge into the lower number. Only pairs that touch a merged cluster
    get a new distance, from the clusters' sums; pairs no longer closer than the threshold are dropped.
    """
    count = len(rows)
    sums = rows.copy()
    sizes = np.ones(count)
    survivor = np.arange(count)
    while len(first):
        ends = np.concatenate([first, second])
        others = np.concatenate([second, first])
        both = np.concatenate([distance, distance])
        nearest_distance = np.full(count, np.inf)
        np.minimum.at(nearest_distance, ends, both)
        at_nearest = both == nearest_distance[ends]
        nearest = np.full(count, count)
        np.minimum.at(nearest, ends[at_nearest], others[at_nearest])
        clusters = np.flatnonzero(nearest < count)
        keep = clusters[(nearest[nearest[clusters]] == clusters) & (clusters < nearest[clusters])]
        if not len(keep):  # cannot happen (the closest pair is always mutual); never loop forever
            break
        gone = nearest[keep]
        sums[keep] += sums[gone]
        sizes[keep] += sizes[gone]
        survivor[gone] = keep
        renamed = np.arange(count)
        renamed[gone] = keep
        merged = np.zeros(count, dtype=bool)
        merged[keep] = True
        first, second = renamed[first], renamed[second]
        low, high = np.minimum(first, second), np.maximum(first, second)
        touched = merged[low] | merged[high]
        kept_low, kept_high, kept_distance = low[~touched], high[~touched], distance[~touched]
        low, high = low[touched], high[touched]
        key = np.unique(low[low != high] * count + high[low != high])  # one entry per pair of clusters
        low, high = key // count, key % count
        average = 1.0 - np.einsum("ij,ij->i", sums[low], sums[high]) / (sizes[low] * sizes[high])
        close = average < distance_threshold
        first = np.concatenate([kept_low, low[close]])
        second = np.concatenate([kept_high, high[close]])
        distance = np.concatenate([kept_distance, average[close]])
    while True:  # follow each point's survivor to the end of its chain of merges
        onward = survivor[survivor]
        if np.array_equal(onward, survivor):
            return survivor
        survivor = onward


def numbered_by_first_row(flat: np.ndarray) -> Labels:
    """Cluster numbers 0..k-1 in the order of each cluster's first row."""
    _, first_rows, numbered = np.unique(flat, return_index=True, return_inverse=True)
    return np.asarray(np.argsort(np.argsort(first_rows))[numbered], dtype=np.int64)


def _tree_linkage(points: np.ndarray, distance_threshold: float) -> Labels:
    """The cut from scipy's average-linkage tree over the condensed distances (the fallback when close pairs
    are too many to keep), each linked group's tree apart: no cluster of the cut spans two groups (see
    ``average_linkage``), and each group costs its squared size instead of the square of the whole."""
    count = len(points)
    condensed = cosine_distances_condensed(points)
    groups = linked_groups(condensed, count, distance_threshold)
    sizes = np.bincount(groups)
    flat = np.empty(count, dtype=np.int64)
    if sizes.max() >= SPLIT_LARGEST_SHARE * count:
        flat[:] = _cut_tree(condensed, distance_threshold)
    else:
        offset = 0
        by_group = np.argsort(groups, kind="stable")  # each group's points in ascending order
        for members in np.split(by_group, np.cumsum(sizes)[:-1]):
            if not len(members):
                continue
            if len(members) == 1:
                flat[members] = offset
            else:
                flat[members] = _cut_tree(condensed_part(condensed, count, members), distance_threshold) + offset
            offset = int(flat[members].max()) + 1
    return numbered_by_first_row(flat)


def _cut_tree(condensed: np.ndarray, distance_threshold: float) -> Labels:
    """Clusters 0..k-1 of one average-linkage tree over ``condensed``, cut at the threshold."""
    tree = hierarchy.linkage(condensed, method="average")
    clusters = 1 + int((tree[:, 2] >= distance_threshold).sum())
    return np.asarray(hierarchy.fcluster(tree, clusters, criterion="maxclust") - 1, dtype=np.int64)


def condensed_part(condensed: np.ndarray, count: int, members: np.ndarray) -> np.ndarray:
    """The condensed distances among ``members`` (ascending point numbers), copied row by row, so that no
    index array larger than one row is built."""
    part = np.empty(len(members) * (len(members) - 1) // 2, dtype=condensed.dtype)
    position = 0
    for offset, point in enumerate(members[:-1].tolist()):
        later = members[offset + 1:]
        # Row ``point`` of the condensed matrix starts at count*point - point*(point+1)/2 and holds point+1...
        start = count * point - point * (point + 1) // 2 - point - 1
        part[position:position + len(later)] = condensed[start + later]
        position += len(later)
    return part


def linked_groups(condensed: np.ndarray, count: int, distance_threshold: float) -> Labels:
    """Connected groups of the points joined by a chain of pairs closer than the threshold, from their
    condensed distances; scanned in chunks, each chunk's pairs joined to the groups found so far, so memory
    stays one chunk's pairs however many there are."""
    row_starts = np.concatenate([[0], np.cumsum(np.arange(count - 1, 0, -1))])
    groups = np.arange(count)
    for start in range(0, len(condensed), SCAN_CHUNK):
        close = np.flatnonzero(condensed[start:start + SCAN_CHUNK] < distance_threshold) + start
        if not len(close):
            continue
        first = np.searchsorted(row_starts, close, side="right") - 1
        second = close - row_starts[first] + first + 1
        # Each point also keeps an edge to its group's first point: the groups grow chunk by chunk.
        _, first_points, group_of = np.unique(groups, return_index=True, return_inverse=True)
        tails = np.concatenate([first, np.arange(count)])
        heads = np.concatenate([second, first_points[group_of]])
        graph = sparse.csr_matrix((np.ones(len(tails), dtype=np.int8), (tails, heads)), shape=(count, count))
        groups = connected_components(graph, directed=False)[1]
    return np.asarray(groups, dtype=np.int64)
