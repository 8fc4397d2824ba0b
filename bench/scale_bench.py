"""Scale benchmark: re-cluster 100,000 items (embeddings precomputed) and report time and peak memory.

    python bench/scale_bench.py [--items 100000]

Items are the real Banking77 texts (train and test); beyond their 13,083 embeddings, extra items are
real embeddings perturbed by small Gaussian noise (and renormalised), each paired with its source text.
The whole theme pipeline runs as a re-clustering runs it (core.themes.build.theme_pipeline: the clusterer
from the default settings, keywords, names ranked with the MiniLM embedder, quotes, areas and their names);
the embedder is loaded before the clock starts (a worker has it loaded). Peak memory is the process's
maximum resident set size, so it includes Python, numpy and scikit-learn themselves.
Results go into the "Scale" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.cluster_bench import publish  # noqa: E402
from bench.incremental_bench import load  # noqa: E402
from core.loop import FeedbackLoop  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.themes.build import theme_pipeline  # noqa: E402


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
    with tempfile.TemporaryDirectory() as folder:
        loop = FeedbackLoop(Settings(database_url="sqlite://", secrets_dir=Path(folder), enrichment_model="rules"))
        pipeline = theme_pipeline(loop)
        loop.embedder.embed(["warm up"])
    load_before = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    before_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    result = pipeline.run(texts, vectors)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    section = "\n".join([
        f"## Scale: {args.items:,} items re-clustered",
        "",
        f"`python bench/scale_bench.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, load average {load_before} before, "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} after; embeddings precomputed (real Banking77 plus "
        "perturbed copies); the shipped pipeline (names ranked with MiniLM, areas), the model loaded first.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| re-cluster seconds (clusterer, keywords, names, quotes, areas) | {seconds:.1f} |",
        f"| peak resident memory of the process | {peak_mib / 1024:.2f} GiB (before clustering: "
        f"{before_mib / 1024:.2f} GiB) |",
        f"| themes | {len(result.themes)} |",
        f"| areas | {len(set(result.area_of_theme.values()))} |",
        f"| unthemed | {(result.labels < 0).mean():.1%} |",
        "",
    ])
    publish(section, not args.no_write)


if __name__ == "__main__":
    main()
