"""Scale benchmark: re-cluster 100,000 items (embeddings precomputed) and report time and peak memory.

    python bench/scale_bench.py [--items 100000]

Items are the real Banking77 texts (train and test); beyond their 13,083 embeddings, extra items are
real embeddings perturbed by small Gaussian noise (and renormalised), each paired with its source text.
The whole theme pipeline runs (clusterer, keywords, titles, quotes). Peak memory is the process's
maximum resident set size, so it includes Python, numpy and scikit-learn themselves.
Results go into the "Scale" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.cluster_bench import publish  # noqa: E402
from bench.incremental_bench import load  # noqa: E402
from clustering.pipeline import ThemePipeline  # noqa: E402
from clustering.spectral import SpectralThemeClusterer  # noqa: E402


def corpus(items: int) -> tuple[list[str], np.ndarray]:
    train_texts, _, train_vectors = load("train")
    test_texts, _, test_vectors = load("test")
    texts = train_texts + test_texts
    vectors = np.vstack([train_vectors, test_vectors]).astype(np.float32)
    rng = np.random.default_rng(42)
    sources = np.concatenate([np.arange(len(texts)), rng.integers(0, len(texts), max(0, items - len(texts)))])[:items]
    noise = rng.normal(scale=0.01, size=(items, vectors.shape[1])).astype(np.float32)
    noise[: len(texts)] = 0  # the real items stay exactly as embedded
    perturbed = vectors[sources] + noise
    perturbed /= np.linalg.norm(perturbed, axis=1, keepdims=True)
    return [texts[i] for i in sources], perturbed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    texts, vectors = corpus(args.items)
    before_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    result = ThemePipeline(SpectralThemeClusterer()).run(texts, vectors)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    section = "\n".join([
        f"## Scale: {args.items:,} items re-clustered",
        "",
        f"`python bench/scale_bench.py` on {datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, "
        f"{os.cpu_count()} cores; embeddings precomputed (real Banking77 plus perturbed copies).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| re-cluster seconds (clusterer, keywords, titles, quotes) | {seconds:.1f} |",
        f"| peak resident memory of the process | {peak_mib / 1024:.2f} GiB (before clustering: "
        f"{before_mib / 1024:.2f} GiB) |",
        f"| themes | {len(result.themes)} |",
        f"| unthemed | {(result.labels < 0).mean():.1%} |",
        "",
    ])
    publish(section, not args.no_write)


if __name__ == "__main__":
    main()
