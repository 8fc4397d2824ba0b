"""Incremental theming benchmark: themes from Banking77 train without 5 intents, then the test set
streamed one item at a time.

    python bench/incremental_bench.py

Measures the per-item time of assignment plus the periodic emergence check (embedding excluded), NMI
and ARI on the streamed items, the unthemed share at the end, and how many of the 5 held-back intents
emerge as new themes (a new theme whose plurality intent is a held-back one, with at least 5 of its
items). The held-back intents are every 15th of the sorted intent names from the 8th: fixed before any
tuning. Results go into the "Incremental" section of bench/RESULTS.md.
"""

from __future__ import annotations

import csv
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.cluster_bench import embeddings_for, publish  # noqa: E402
from clustering.incremental import IncrementalThemer  # noqa: E402
from clustering.spectral import SpectralThemeClusterer  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "banking77"


def load(name: str) -> tuple[list[str], list[str], np.ndarray]:
    path = DATA / f"{name}.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    texts = [r["text"] for r in records]
    return texts, [r["category"] for r in records], embeddings_for(texts, path)


def main() -> None:
    _, train_intents, train_vectors = load("train")
    _, test_intents, test_vectors = load("test")
    held_back = set(sorted(set(train_intents))[7::15][:5])
    keep = np.array([intent not in held_back for intent in train_intents])
    start = time.perf_counter()
    base = SpectralThemeClusterer().fit_predict(train_vectors[keep])
    base_seconds = time.perf_counter() - start
    themer = IncrementalThemer.from_labels(train_vectors[keep], base)
    known = set(themer.theme_ids)

    labels = np.full(len(test_vectors), -1, dtype=np.int64)
    per_item = []
    new_theme_members: dict[int, list[int]] = {}
    for index, vector in enumerate(test_vectors):
        tick = time.perf_counter()
        labels[index] = themer.assign(index, vector)
        changes = themer.emerge()
        per_item.append(time.perf_counter() - tick)
        for change in changes:
            labels[change.members] = change.theme
    for change in themer.emerge(force=True):
        labels[change.members] = change.theme
    for theme in set(labels.tolist()) - known - {-1}:
        new_theme_members[theme] = np.flatnonzero(labels == theme).tolist()

    truth = np.array(test_intents)
    scored = labels.copy()
    scored[scored < 0] = scored.max() + 1
    emerged = set()
    for members in new_theme_members.values():
        intents, counts = np.unique(truth[members], return_counts=True)
        if intents[counts.argmax()] in held_back and counts.max() >= 5:
            emerged.add(str(intents[counts.argmax()]))
    times_ms = np.array(per_item) * 1000
    section = "\n".join([
        "## Incremental: Banking77 train without 5 intents, test streamed",
        "",
        f"`python bench/incremental_bench.py` on {datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, "
        f"{os.cpu_count()} cores. Base themes: {len(known)} from {int(keep.sum())} train items "
        f"({base_seconds:.1f} s). Held back: {', '.join(sorted(held_back))}.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| per-item assignment incl. emergence check, median | {np.median(times_ms):.3f} ms |",
        f"| per-item, 99th percentile | {np.percentile(times_ms, 99):.3f} ms |",
        f"| NMI on streamed items | {normalized_mutual_info_score(truth, scored):.3f} |",
        f"| ARI on streamed items | {adjusted_rand_score(truth, scored):.3f} |",
        f"| unthemed at the end | {(labels < 0).mean():.1%} |",
        f"| new themes | {len(new_theme_members)} |",
        f"| held-back intents emerged | {len(emerged)} of 5 ({', '.join(sorted(emerged))}) |",
        "",
    ])
    publish(section, "--no-write" not in sys.argv)


if __name__ == "__main__":
    main()
