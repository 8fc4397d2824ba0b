"""How long new items wait for a theme when they arrive in passes, as the themes task sees them (issue 17's
50/s latency line), and what the pool's adoption floor trades for it.

    python bench/pool_latency_bench.py [--pass-size 50] [--no-write]

Themes from Banking77 train without 5 intents (as bench/incremental_bench.py), then the test set streamed in
passes of ``--pass-size`` items (50: one second of traffic at 50 deliveries/s), each pass ending with a forced
emergence check, as ``core.themes.incremental.assign_embedded`` does on every pass. For each adoption floor
(the similarity at which a waiting item is adopted by its nearest theme; 0.5 ships): the share of items in a
theme by the end of their own pass and within 2 and 10 passes, the share still waiting at the end, NMI and ARI
on the streamed items, and how many held-back intents emerge as new themes. In-memory: the database path
rebuilds the themer every pass and lets waiting items try to join again, which this does not model.
Results go into the "Pool latency" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.cluster_bench import publish  # noqa: E402
from bench.incremental_bench import load  # noqa: E402
from clustering.incremental import IncrementalThemer  # noqa: E402
from clustering.spectral import SpectralThemeClusterer  # noqa: E402

FLOORS = (0.5, 0.45, 0.4)


def stream(train: np.ndarray, base: np.ndarray, test: np.ndarray, floor: float,
           pass_size: int) -> tuple[np.ndarray, np.ndarray, set[int]]:
    """(final theme per test item, the pass each got its theme in or -1, the themes that existed before)."""
    themer = IncrementalThemer.from_labels(train, base)
    themer.adopt_floor = floor
    known = set(themer.theme_ids)
    labels = np.full(len(test), -1, dtype=np.int64)
    themed_in = np.full(len(test), -1, dtype=np.int64)
    for number, first in enumerate(range(0, len(test), pass_size)):
        for index in range(first, min(first + pass_size, len(test))):
            labels[index] = themer.assign(index, test[index])
        for change in themer.emerge(force=True):
            labels[change.members] = change.theme
        themed_in[(labels >= 0) & (themed_in < 0)] = number
    return labels, themed_in, known


def row(floor: float, labels: np.ndarray, themed_in: np.ndarray, known: set[int], truth: np.ndarray,
        held_back: set[str], pass_size: int) -> str:
    own = np.arange(len(labels)) // pass_size
    wait = np.where(themed_in >= 0, themed_in - own, 10**6)
    scored = labels.copy()
    scored[scored < 0] = scored.max() + 1
    emerged = set()
    for theme in set(labels.tolist()) - known - {-1}:
        members = np.flatnonzero(labels == theme)
        intents, counts = np.unique(truth[members], return_counts=True)
        if intents[counts.argmax()] in held_back and counts.max() >= 5:
            emerged.add(str(intents[counts.argmax()]))
    shipped = " (shipped)" if floor == 0.5 else ""
    return (f"| {floor}{shipped} | {(wait == 0).mean():.1%} | {(wait <= 2).mean():.1%} | {(wait <= 10).mean():.1%} "
            f"| {(labels < 0).mean():.1%} | {normalized_mutual_info_score(truth, scored):.3f} | "
            f"{adjusted_rand_score(truth, scored):.3f} | {len(emerged)} of {len(held_back)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pass-size", type=int, default=50)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    _, train_intents, train_vectors = load("train")
    _, test_intents, test_vectors = load("test")
    held_back = set(sorted(set(train_intents))[7::15][:5])
    keep = np.array([intent not in held_back for intent in train_intents])
    base = SpectralThemeClusterer().fit_predict(train_vectors[keep])
    truth = np.array(test_intents)
    rows = []
    for floor in FLOORS:
        labels, themed_in, known = stream(train_vectors[keep], base, test_vectors, floor, args.pass_size)
        rows.append(row(floor, labels, themed_in, known, truth, held_back, args.pass_size))
        print(rows[-1], file=sys.stderr, flush=True)
    section = "\n".join([
        "## Pool latency: items arriving in passes (issue 17)", "",
        f"`python bench/pool_latency_bench.py --pass-size {args.pass_size}` on {datetime.now(UTC):%Y-%m-%d %H:%M} "
        f"UTC, {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}. Base themes from Banking77 train without "
        f"{', '.join(sorted(held_back))}; the 3,080 test items in passes of {args.pass_size}.", "",
        "| adoption floor | themed in their own pass | within 2 passes | within 10 | waiting at the end | NMI | ARI "
        "| held-back intents emerged |",
        "|---|---|---|---|---|---|---|---|",
        *rows, "",
    ])
    publish(section, not args.no_write)


if __name__ == "__main__":
    main()
