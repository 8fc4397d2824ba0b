"""Learning from people on Banking77 test: a product manager moves 5% of the items to their true theme.

    python bench/people_bench.py [--no-write]

The items are clustered; each intent's true theme is the theme Hungarian matching gives it (or a new theme
when it got none); 5% of the items are then placed there by hand, simulated from the labels, and the
shipped steering (clustering/steering.py at the default ``steer_similarity``) decides which other items
follow. Measured: NMI on the items nobody moved, before and after, over five random draws, for two ways
of picking the 5%: among the misplaced items (what a person corrects) and among all items. Results go into
the "Learning from people" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import normalized_mutual_info_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.cluster_bench import DEFAULT_DATA, embeddings_for, publish  # noqa: E402
from clustering.spectral import SpectralThemeClusterer  # noqa: E402
from clustering.steering import follow_placed  # noqa: E402
from core.settings import Settings  # noqa: E402

SHARE = 0.05
DRAWS = 5


def true_themes(themes: np.ndarray, intents: np.ndarray) -> np.ndarray:
    """Each item's true theme: its intent's Hungarian-matched theme, or a new id when the intent has none."""
    weights = np.zeros((themes.max() + 1, intents.max() + 1))
    np.add.at(weights, (themes, intents), 1)
    rows, cols = linear_sum_assignment(-weights)
    matched = dict(zip(cols.tolist(), rows.tolist(), strict=True))
    fresh = themes.max() + 1
    return np.array([matched.get(intent, fresh + intent) for intent in intents.tolist()], dtype=np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="Print only; leave RESULTS.md alone.")
    args = parser.parse_args()
    with DEFAULT_DATA.open(newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    vectors = embeddings_for([r["text"] for r in records], DEFAULT_DATA)
    _, intents = np.unique([r["category"] for r in records], return_inverse=True)
    themes = SpectralThemeClusterer().fit_predict(vectors)
    themes[themes < 0] = themes.max() + 1  # unthemed items count as one more group, as in the scorer
    truth = true_themes(themes, intents)
    threshold = Settings().steer_similarity
    lines = ["| 5% picked among | moved | items that followed | NMI on the others before | after | gain |",
             "|---|---|---|---|---|---|"]
    for pool_name, pool in (("misplaced items", np.flatnonzero(truth != themes)),
                            ("all items", np.arange(len(themes)))):
        followed, before, after = [], [], []
        for draw in range(DRAWS):
            moved = np.random.default_rng(draw).choice(pool, int(SHARE * len(themes)), replace=False)
            placed = {int(row): int(truth[row]) for row in moved}
            steered = themes.copy()
            followers = follow_placed(vectors, placed, threshold)
            for row, target in followers.items():
                steered[row] = target
            others = np.setdiff1d(np.arange(len(themes)), moved)
            followed.append(len(followers))
            before.append(normalized_mutual_info_score(intents[others], themes[others]))
            after.append(normalized_mutual_info_score(intents[others], steered[others]))
        gain = np.mean(after) - np.mean(before)
        lines.append(f"| {pool_name} | {len(moved)} | {np.mean(followed):.1f} | {np.mean(before):.4f} | "
                     f"{np.mean(after):.4f} | {gain:+.4f} |")
    section = "\n".join([
        "## Learning from people: Banking77 test",
        "",
        f"`python bench/people_bench.py`: {SHARE:.0%} of {len(themes)} items placed in their true theme, mean of "
        f"{DRAWS} draws; shipped steering (near-duplicates at similarity >= {threshold}). Target: +0.03.",
        "",
        *lines,
        "",
        "Not met. Why: the same-intent mates of a moved item that stay in its source theme are told apart",
        "from the theme's other items with ROC AUC 0.76 by similarity to the moved items (0.70 by TF-IDF),",
        "so a rule that makes them follow also moves wrong items: following within the source theme at",
        "similarity >= 0.9 moves 74 items, 51 rightly, and still loses 0.0015. Wider rules tried on similar",
        "draws (a vote against the theme's remaining items, sub-splitting the source theme, label propagation",
        "on the kNN graph, logistic regression or a linear SVM on the corrected labels, must-link edges,",
        "metric learning) gained at most +0.009 and lost up to 0.02 on some draws. Fine-tuning MiniLM itself",
        "on the moves (in-batch contrastive loss, each moved item paired with members of its target theme,",
        "then re-embedding; 2-6 minutes on this CPU) gained +0.009 to +0.017 over six runs, +0.011 to +0.014",
        "with a term keeping unmoved items in place, less with hard negatives or as classification.",
        "Moving every item of the same intent out of the same source theme (an oracle) would gain about",
        "+0.065: the limit is telling those items apart from their theme-mates in MiniLM's space.",
        "",
    ])
    publish(section, not args.no_write)


if __name__ == "__main__":
    main()
