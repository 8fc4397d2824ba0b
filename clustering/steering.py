"""People's placements as guidance for the next clustering.

Two rules, measured in bench/people_bench.py:

- Near-duplicates follow: an item nearly identical to one a person placed goes where it went.
- Moves teach the cluster they came from: when a person moves two or more items out of the same cluster
  into the same theme, that cluster's other items that are clearly closer to the moved ones than to the
  rest of their cluster follow them, decided twice: the second time against centres that count the first
  round's followers on the moved side (the first round's "rest" still held them, which made it too timid).
  When the moved items were typical of their cluster, are at least a tenth of it, all went to the same
  theme and that theme is one the clustering found too, the whole cluster follows: the clustering had
  split one theme in two.

A single move teaches nothing beyond its near-duplicates: one item does not say which of its cluster-mates
share its intent (on Banking77, ROC AUC 0.8 by similarity), and following it on weaker evidence lowers NMI.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping

import numpy as np

from clustering.base import Embeddings, Labels
from clustering.vectors import unit

# Moves out of one cluster into one theme needed before other items follow: one is noise, two a pattern.
MIN_MOVES = 2
# The share of a cluster's items people must have moved before the whole cluster may follow them: two
# typical items out of a hundred do not show that the clustering split one theme (on Banking77 they
# sent whole mixed clusters the wrong way).
WHOLE_CLUSTER_SHARE = 0.1
# Rounds of deciding who follows, each against centres that count the previous round's followers on the
# moved side. Two gained on six of the nine corpus shapes of bench/people_bench.py (even on two, -0.0013 on
# one) and followed less by chance; more rounds drift: the moved side grows into the rest of a pure cluster.
FOLLOW_ROUNDS = 2


def follow_placed(embeddings: Embeddings, placed: Mapping[int, int], threshold: float) -> dict[int, int]:
    """{row: target} for every row not placed itself whose most similar placed row is at least ``threshold``.

    ``placed`` maps a row a person put somewhere to where it went (any integer key: a theme id, a label).
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


def follow_moves(embeddings: Embeddings, clusters: Labels, moves: Mapping[int, int], found: Collection[int],
                 margin: float) -> dict[int, int]:
    """{row: target} for the cluster-mates that follow items people moved out of their cluster.

    ``clusters`` is each row's cluster (-1: none); ``moves`` maps a row a person placed somewhere other than
    its cluster's theme to where it went; ``found`` holds the targets that are themes the clustering found
    (only into those does a whole cluster follow). An item follows the moved items when it is closer to
    their centre than to the centre of its cluster's remaining items by more than ``margin`` (cosine; see
    ``_who_follows`` for the rounds); the
    moved items count as typical of their cluster when their mean similarity to its centre is within ``margin``
    of its members'; the whole cluster follows only when every move out of it went to the same theme and
    the moves are at least ``WHOLE_CLUSTER_SHARE`` of it. Rows in ``moves`` are never in the result.
    """
    moved_out: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for row, target in sorted(moves.items()):
        if 0 <= row < len(embeddings) and clusters[row] >= 0:
            moved_out[int(clusters[row])][target].append(row)
    followers: dict[int, int] = {}
    for cluster, by_target in sorted(moved_out.items()):
        targets = sorted(target for target, rows in by_target.items() if len(rows) >= MIN_MOVES)
        members = np.asarray([row for row in np.flatnonzero(clusters == cluster).tolist() if row not in moves])
        if not targets or len(members) == 0:
            continue
        centre = unit(embeddings[members].mean(axis=0))
        stay = embeddings[members] @ centre
        if len(by_target) == 1 and targets[0] in found and _is_split_off_piece(embeddings[by_target[targets[0]]],
                                                                      stay, centre, margin):
            followers.update(dict.fromkeys(members.tolist(), targets[0]))
            continue
        choice, follows = _who_follows(embeddings[members], centre, [embeddings[by_target[t]] for t in targets],
                                       margin)
        for row, target_index in zip(members[follows].tolist(), choice[follows].tolist(), strict=True):
            followers[row] = targets[target_index]
    return followers


def _who_follows(members: np.ndarray, rest_centre: np.ndarray, moved: list[np.ndarray],
                 margin: float) -> tuple[np.ndarray, np.ndarray]:
    """(nearest moved group, follows?) per member row, over ``FOLLOW_ROUNDS`` rounds.

    A member follows when it is closer to its nearest moved group's centre than to the centre of the members
    that do not follow (at first all of them: ``rest_centre``) by more than ``margin``; each round recomputes
    both centres from the last round.
    """
    moved_centres = np.vstack([unit(group.mean(axis=0)) for group in moved])
    for _ in range(FOLLOW_ROUNDS):
        toward = members @ moved_centres.T
        choice = toward.argmax(axis=1)
        follows = toward[np.arange(len(members)), choice] > members @ rest_centre + margin
        moved_centres = np.vstack([unit(np.vstack([group, members[follows & (choice == index)]]).mean(axis=0))
                                   for index, group in enumerate(moved)])
        if follows.all():
            break  # nobody left to be the rest: the last decision stands
        rest_centre = unit(members[~follows].mean(axis=0))
    return choice, follows


def steer(embeddings: Embeddings, clusters: Labels, placed: Mapping[int, int], moves: Mapping[int, int],
          found: Collection[int], similarity: float, margin: float) -> dict[int, int]:
    """Both rules: {row: target} for rows people did not place; a near-duplicate's placement wins."""
    followers = follow_moves(embeddings, clusters, moves, found, margin)
    followers.update(follow_placed(embeddings, placed, similarity))
    return {row: target for row, target in followers.items() if row not in placed}


def _is_split_off_piece(moved: np.ndarray, stay: np.ndarray, centre: np.ndarray, margin: float) -> bool:
    """True when the moved rows are a tenth or more of their cluster and as typical of it as its members."""
    share = len(moved) / (len(moved) + len(stay))
    return share >= WHOLE_CLUSTER_SHARE and float((moved @ centre).mean()) >= float(stay.mean()) - margin
