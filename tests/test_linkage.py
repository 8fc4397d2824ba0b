"""The linkage, ordering and neighbour shortcuts give exactly what the plain computations give."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.cluster import hierarchy
from scipy.spatial.distance import pdist

from clustering import linkage
from clustering.linkage import average_linkage, linked_groups
from clustering.spectral import canonical_order
from clustering.vectors import cosine_distances_condensed, unit_rows


def separated_groups(groups: int = 12, size: int = 30, spread: float = 0.15, seed: int = 0) -> np.ndarray:
    """Unit points around ``groups`` random directions, in a shuffled order."""
    rng = np.random.default_rng(seed)
    centres = unit_rows(rng.normal(size=(groups, 24)))
    points = np.repeat(centres, size, axis=0) + spread * rng.normal(size=(groups * size, 24)) / np.sqrt(24)
    return np.asarray(unit_rows(points)[rng.permutation(groups * size)])


def plain_average_linkage(points: np.ndarray, threshold: float) -> np.ndarray:
    """One tree over every pair, cut at the threshold, clusters numbered by their first row."""
    tree = hierarchy.linkage(cosine_distances_condensed(points), method="average")
    flat = hierarchy.fcluster(tree, 1 + int((tree[:, 2] >= threshold).sum()), criterion="maxclust")
    _, first_rows, numbered = np.unique(flat, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first_rows))[numbered]


@pytest.mark.parametrize("threshold", [0.05, 0.2, 0.4, 0.8])
@pytest.mark.parametrize("spread", [0.15, 0.6])
def test_merging_mutual_nearest_clusters_gives_the_clusters_of_one_tree(threshold: float, spread: float) -> None:
    points = separated_groups(spread=spread)
    expected = plain_average_linkage(points, threshold)
    assert len(set(expected.tolist())) > 1  # a cut that merges something and keeps clusters apart
    assert np.array_equal(average_linkage(points, threshold), expected)


@pytest.mark.parametrize("threshold", [0.05, 0.2, 0.4, 0.8])
def test_linking_groups_apart_gives_the_clusters_of_one_tree(threshold: float,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(linkage, "MAX_CLOSE_SHARE", 0.0)  # too many close pairs: scipy's tree path
    points = separated_groups()
    groups = linked_groups(cosine_distances_condensed(points), len(points), threshold)
    assert len(set(groups.tolist())) > 1 or threshold >= 0.4  # the split path is taken where groups exist
    assert np.array_equal(average_linkage(points, threshold), plain_average_linkage(points, threshold))


def test_close_pairs_past_the_limit_fall_back_to_the_tree() -> None:
    rows = unit_rows(separated_groups().astype(np.float64))
    assert linkage.close_pairs(rows, 0.4, 10) is None
    first, second, distance = linkage.close_pairs(rows, 0.4, len(rows) ** 2)
    expected = cosine_distances_condensed(rows)
    close = np.flatnonzero(expected < 0.4)
    assert len(first) == len(close) and bool(np.all(first < second))
    positions = len(rows) * first - first * (first + 1) // 2 + second - first - 1
    assert np.array_equal(np.sort(positions), close) and np.allclose(distance, expected[positions])


def test_linked_groups_are_single_linkage_at_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    points = separated_groups(groups=8, size=20, spread=0.4, seed=3)
    # Tiny chunks: the groups have to be carried from chunk to chunk.
    monkeypatch.setattr(linkage, "SCAN_CHUNK", 97)
    for threshold in (0.1, 0.3, 0.6):
        found = linked_groups(cosine_distances_condensed(points), len(points), threshold)
        tree = hierarchy.linkage(pdist(points, "cosine"), method="single")
        single = hierarchy.fcluster(tree, 1 + int((tree[:, 2] >= threshold).sum()), criterion="maxclust")
        # The same partition, whatever the numbers.
        pairs = {(int(a), int(b)) for a, b in zip(found, single, strict=True)}
        assert len(pairs) == len(set(found.tolist())) == len(set(single.tolist()))


def test_one_tight_blob_is_linked_whole_by_the_tree() -> None:
    rng = np.random.default_rng(1)
    points = unit_rows(np.ones((60, 8)) + 0.05 * rng.normal(size=(60, 8)))
    assert linkage.close_pairs(points, 0.3, 60 * 59 // 16) is None  # every pair is close
    assert np.array_equal(average_linkage(points, 0.3), plain_average_linkage(points, 0.3))
    assert average_linkage(points[:1], 0.3).tolist() == [0]


def test_canonical_order_is_lexsort_with_duplicate_rows() -> None:
    points = separated_groups(groups=5, size=40).astype(np.float32)
    rng = np.random.default_rng(2)
    # Duplicates (the same text twice) and rows that tie on their first value only.
    tied = points[:30].copy()
    tied[:, 1:] = rng.normal(size=(30, points.shape[1] - 1))
    rows = np.vstack([points, points[rng.integers(0, len(points), 50)], tied])[rng.permutation(len(points) + 80)]
    assert np.array_equal(canonical_order(rows), np.lexsort(rows.T[::-1]))
    assert np.array_equal(canonical_order(points), np.lexsort(points.T[::-1]))


@pytest.mark.parametrize("count", [40, 3000])
def test_nearest_neighbours_are_the_full_sort_ties_by_index(count: int) -> None:
    from clustering.spectral import nearest_neighbours

    rng = np.random.default_rng(4)
    points = separated_groups(groups=10, size=count // 10, spread=0.5).astype(np.float32)
    points[rng.integers(0, count, count // 5)] = points[0]  # many copies of one row: ties everywhere
    neighbours, similarities = nearest_neighbours(points, 12)
    similarity = points @ points.T
    np.fill_diagonal(similarity, -np.inf)
    columns = np.arange(count)
    expected = np.vstack([np.lexsort((columns, -row))[:12] for row in similarity])
    assert np.array_equal(neighbours, expected)
    assert np.array_equal(similarities, np.take_along_axis(similarity, expected, axis=1))


def test_neighbour_order_key_sorts_like_a_lexsort_over_rows_values_and_columns() -> None:
    from clustering.spectral import _by_row_most_similar_first

    rng = np.random.default_rng(5)
    rows = np.sort(rng.integers(0, 40, 4000))
    # Negative, zero and minus zero, minus infinity (an item's own column) and many exact ties.
    values = rng.choice(np.array([-1.0, -0.5, -0.0, 0.0, 1e-30, -1e-30, 0.25, 0.5, 1.0, -np.inf]), 4000)
    values = np.where(rng.random(4000) < 0.5, values, rng.uniform(-1, 1, 4000)).astype(np.float32)
    columns = np.arange(4000)  # as np.nonzero gives them: by row, then by column
    expected = np.lexsort((columns, -values, rows))
    assert np.array_equal(_by_row_most_similar_first(rows, values), expected)
    assert np.array_equal(_by_row_most_similar_first(rows, values.astype(np.float64)), expected)


def test_nearest_neighbours_of_float64_rows_follow_the_same_order() -> None:
    from clustering.spectral import nearest_neighbours

    points = separated_groups(groups=5, size=20, spread=0.5)
    points[::7] = points[0]
    neighbours, _ = nearest_neighbours(points, 8)
    single, _ = nearest_neighbours(points.astype(np.float32), 8)
    similarity = points @ points.T
    np.fill_diagonal(similarity, -np.inf)
    expected = np.vstack([np.lexsort((np.arange(len(points)), -row))[:8] for row in similarity])
    assert np.array_equal(neighbours, expected)
    assert (neighbours == single).mean() > 0.95  # float32 rounding may reorder near-ties only


def test_silhouettes_of_groupings_are_those_computed_from_scratch() -> None:
    from sklearn.metrics import silhouette_score

    from clustering.spectral import GroupingSilhouettes

    points = separated_groups(groups=12, size=25, spread=0.6)
    rng = np.random.default_rng(6)
    fine = np.repeat(np.arange(24), 300 // 24 + 1)[:300]
    rng.shuffle(fine)
    silhouettes = GroupingSilhouettes(points, fine)
    assert abs(silhouettes(fine) - silhouette_score(points, fine, metric="cosine")) < 1e-9
    for groups in (2, 5, 11):
        grouping = rng.integers(0, groups, 24)
        grouping = np.unique(grouping, return_inverse=True)[1]  # contiguous numbers
        labels = grouping[fine]
        assert abs(silhouettes(labels) - silhouette_score(points, labels, metric="cosine")) < 1e-9
    assert silhouettes(np.zeros(300, dtype=np.int64)) == 0.0
    assert GroupingSilhouettes(points, np.zeros(300, dtype=np.int64))(np.zeros(300, dtype=np.int64)) == 0.0
