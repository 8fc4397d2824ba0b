"""Incremental theming: items join known themes at once; a new topic emerges as a new theme."""

from __future__ import annotations

import numpy as np

from clustering.base import UNTHEMED
from clustering.incremental import IncrementalThemer


def groups(count: int, per_group: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(count, 32))
    truth = np.repeat(np.arange(count), per_group)
    points = centres[truth] + rng.normal(scale=0.25, size=(len(truth), 32))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32), truth


def test_known_topics_join_and_a_new_topic_emerges() -> None:
    points, truth = groups(5, 40, seed=1)
    known = truth < 4  # topic 4 is never seen while building the themes
    themer = IncrementalThemer.from_labels(points[known][::2], truth[known][::2])
    stream = np.flatnonzero(~known | (np.arange(len(truth)) % 2 == 1))
    labels = {}
    for key in stream:
        labels[int(key)] = themer.assign(int(key), points[key])
        for change in themer.emerge():
            for member in change.members:
                labels[member] = change.theme
    for change in themer.emerge(force=True):
        for member in change.members:
            labels[member] = change.theme
    for key, theme in labels.items():
        if truth[key] < 4:
            assert theme == truth[key]  # joined its own theme
    new = {labels[int(k)] for k in np.flatnonzero(~known)}
    assert len(new) == 1 and new.pop() not in {0, 1, 2, 3, UNTHEMED}
    assert themer.pool_keys == []


def test_far_items_wait_unthemed_until_enough_gather() -> None:
    points, truth = groups(3, 30, seed=2)
    themer = IncrementalThemer.from_labels(points[truth < 2], truth[truth < 2], min_new_theme=6)
    outsiders = np.flatnonzero(truth == 2)[:4]
    for key in outsiders:
        assert themer.assign(int(key), points[key]) == UNTHEMED
    assert themer.emerge(force=True) == []  # four are not yet a theme, and none is close to a known one
    assert sorted(themer.pool_keys) == sorted(int(k) for k in outsiders)


def test_assignment_moves_the_centroid() -> None:
    points, truth = groups(2, 20, seed=3)
    themer = IncrementalThemer.from_labels(points, truth)
    before = themer.centroids[0].copy()
    themer.assign(999, points[0])
    assert themer.sizes[0] == 21 and not np.allclose(before, themer.centroids[0])


def _near(centre: np.ndarray, towards: np.ndarray, cosine: float) -> np.ndarray:
    """A unit vector at ``cosine`` to ``centre``, in the plane of ``centre`` and ``towards``."""
    side = towards - (towards @ centre) * centre
    side /= np.linalg.norm(side)
    return (cosine * centre + np.sqrt(1 - cosine**2) * side).astype(np.float32)


def test_a_near_item_is_adopted_at_once_and_a_new_theme_takes_it_over() -> None:
    axes = np.eye(32, dtype=np.float32)
    themer = IncrementalThemer(centroids=axes[:1].copy(), sizes=np.array([50]), radii=np.array([0.9], np.float32),
                               theme_ids=[7], min_new_theme=4)
    novel = [_near(axes[0], axes[1] + 0.05 * axes[2 + i], 0.7) for i in range(5)]  # close to each other
    assert themer.assign(1, novel[0]) == UNTHEMED  # outside the theme's radius
    changes = themer.emerge(force=True)
    assert [(c.theme, c.members, c.new) for c in changes] == [(7, [1], False)]  # in theme 7 at once
    assert themer.provisional_keys == [1] and themer.pool_keys == []
    for key, vector in enumerate(novel[1:], start=2):
        assert themer.assign(key, vector) == UNTHEMED
    changes = themer.emerge(force=True)
    assert len(changes) == 1 and changes[0].new
    assert sorted(changes[0].members) == [1, 2, 3, 4, 5]  # the adopted one moves to the new theme
    assert themer.provisional_keys == []


def test_provisional_items_are_kept_only_for_a_while() -> None:
    axes = np.eye(32, dtype=np.float32)
    themer = IncrementalThemer(centroids=axes[:1].copy(), sizes=np.array([50]), radii=np.array([0.9], np.float32),
                               theme_ids=[7], provisional_keep=3)
    for key in range(5):  # each far from the others: no new theme
        themer.assign(key, _near(axes[0], axes[1 + key], 0.7))
        themer.emerge(force=True)
    assert themer.provisional_keys == [2, 3, 4] and themer.provisional_themes == [7, 7, 7]
