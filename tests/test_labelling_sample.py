"""Labelling a very large corpus reads a sample: an equal share per theme, quotes pointing at the corpus's rows."""

from __future__ import annotations

import numpy as np

from clustering.labels import MIN_PER_GROUP, ThemeLabeller, labelling_sample
from clustering.vectors import unit_rows


def test_small_groups_are_kept_whole_and_large_ones_capped() -> None:
    labels = np.asarray([0] * 5000 + [1] * 30 + [-1] * 900 + [2] * 2000)
    rows = labelling_sample(labels, 1000)
    kept = {group: int((labels[rows] == group).sum()) for group in (0, 1, -1, 2)}
    assert kept == {0: 250, 1: 30, -1: 250, 2: 250}  # 1000 // 4 groups each, the small one whole
    assert np.array_equal(rows, np.sort(rows)) and len(set(rows.tolist())) == len(rows)
    assert np.array_equal(rows, labelling_sample(labels, 1000))  # deterministic
    assert len(labelling_sample(labels, 10_000)) == len(labels)  # under the limit: every row
    assert int((labels[labelling_sample(labels, 40)] == 0).sum()) == MIN_PER_GROUP


def test_a_sampled_labelling_names_each_theme_from_its_own_items() -> None:
    rng = np.random.default_rng(0)
    topics = {0: "card payment declined at the shop", 1: "password reset email never arrives",
              2: "exchange rate on foreign transfer"}
    labels = np.asarray([0] * 900 + [1] * 700 + [2] * 40)
    texts = [f"{topics[int(t)]} {rng.choice(['today', 'again', 'twice', 'now'])}" for t in labels]
    centres = rng.normal(size=(3, 16))
    embeddings = unit_rows(centres[labels] + 0.05 * rng.normal(size=(len(labels), 16))).astype(np.float32)
    whole = ThemeLabeller().label(texts, embeddings, labels)
    sampled = ThemeLabeller(max_texts=300).label(texts, embeddings, labels)
    assert set(sampled) == {0, 1, 2}
    for theme, label in sampled.items():
        assert label.quote_indices and all(labels[i] == theme for i in label.quote_indices)
        assert label.title == whole[theme].title  # the same words lead, read from fewer items
        assert label.keywords[:3] == whole[theme].keywords[:3]
