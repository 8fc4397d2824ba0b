"""Theme clustering benchmark on Banking77 test: our pipeline against BERTopic's defaults, same embeddings.

    python bench/cluster_bench.py [--data ../shared/data/banking77/test.csv] [--no-bertopic]

Labels are used only for scoring; the number of intents is never given to either pipeline. Clustering
seconds exclude embedding (both get the same precomputed MiniLM vectors) and follow a warm-up run.
Results go to stdout and into the "Clustering" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from clustering.identity import match_to_predecessors  # noqa: E402
from clustering.pipeline import ThemePipeline  # noqa: E402
from clustering.spectral import SpectralThemeClusterer  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "banking77" / "test.csv"
RESULTS = ROOT / "bench" / "RESULTS.md"
CACHE = ROOT / "bench" / "out"


def score(truth: list[str], predicted: np.ndarray) -> dict[str, float]:
    """The same measures as ../shared/tools/score_clusters.py (unthemed counts as one more cluster)."""
    names = {name: index for index, name in enumerate(sorted(set(truth)))}
    y = np.array([names[t] for t in truth])
    p = predicted.copy()
    unthemed = float((p < 0).mean())
    p[p < 0] = p.max() + 1
    _, p = np.unique(p, return_inverse=True)
    weights = np.zeros((p.max() + 1, y.max() + 1))
    np.add.at(weights, (p, y), 1)
    rows, cols = linear_sum_assignment(-weights)
    return {"nmi": normalized_mutual_info_score(y, p), "ari": adjusted_rand_score(y, p),
            "acc": weights[rows, cols].sum() / len(y), "unthemed": unthemed,
            "themes": float(len(set(predicted[predicted >= 0].tolist())))}


def embeddings_for(texts: list[str], data: Path) -> np.ndarray:
    """MiniLM embeddings of the texts, cached by the file's hash (embedding is not what we time)."""
    digest = hashlib.sha256(data.read_bytes()).hexdigest()[:16]
    cache = CACHE / f"{data.stem}-{digest}-minilm.npy"
    if cache.exists():
        return np.load(cache)
    from rich.progress import Progress

    from plugins.minilm_embedder import make_embedder

    embedder = make_embedder()
    with Progress() as progress:
        task = progress.add_task("Embedding (cached afterwards)", total=len(texts))
        vectors = embedder.embed(texts, progress=lambda n: progress.advance(task, n))
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def run_ours(texts: list[str], vectors: np.ndarray) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    result = ThemePipeline(SpectralThemeClusterer()).run(texts, vectors)
    return result.labels, time.perf_counter() - start


def run_bertopic(texts: list[str], vectors: np.ndarray) -> tuple[np.ndarray, float]:
    from bertopic import BERTopic

    start = time.perf_counter()
    topics, _ = BERTopic().fit_transform(texts, embeddings=vectors)
    return np.asarray(topics, dtype=np.int64), time.perf_counter() - start


def identity_kept(vectors: np.ndarray) -> tuple[int, int]:
    """Cluster a random 1/1.1 of the items, then all of them: how many of the first themes keep their id."""
    count = len(vectors)
    first = np.sort(np.random.default_rng(0).permutation(count)[: int(count / 1.1)])
    before = SpectralThemeClusterer().fit_predict(vectors[first])
    after = SpectralThemeClusterer().fit_predict(vectors)
    old: dict[int, set[int]] = {}
    new: dict[int, set[int]] = {}
    for index, label in zip(first.tolist(), before.tolist(), strict=True):
        if label >= 0:
            old.setdefault(label, set()).add(index)
    for index, label in enumerate(after.tolist()):
        if label >= 0:
            new.setdefault(label, set()).add(index)
    return len(match_to_predecessors(new, old)), len(old)


def row(name: str, measures: dict[str, float], seconds: float) -> str:
    return (f"| {name} | {measures['nmi']:.3f} | {measures['ari']:.3f} | {measures['acc']:.3f} | "
            f"{measures['unthemed']:.1%} | {int(measures['themes'])} | {seconds:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="category")
    parser.add_argument("--no-bertopic", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave RESULTS.md alone.")
    args = parser.parse_args()
    with args.data.open(newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    texts = [r[args.text_column] for r in records]
    truth = [r[args.label_column] for r in records]
    vectors = embeddings_for(texts, args.data)

    run_ours(texts[:500], vectors[:500])  # warm-up (imports, BLAS threads)
    labels, seconds = run_ours(texts, vectors)
    again, _ = run_ours(texts, vectors)
    permutation = np.random.default_rng(7).permutation(len(texts))
    shuffled, _ = run_ours([texts[i] for i in permutation], vectors[permutation])
    stability = adjusted_rand_score(labels[permutation], shuffled)
    lines = [
        "| pipeline | NMI | ARI | accuracy | unthemed | themes | clustering s |",
        "|---|---|---|---|---|---|---|",
        row("feedbackloop (spectral, K found)", score(truth, labels), seconds),
    ]
    ratio = ""
    if not args.no_bertopic:
        run_bertopic(texts[:500], vectors[:500])  # warm-up: numba compiles UMAP and HDBSCAN on first use
        topics, bertopic_seconds = run_bertopic(texts, vectors)
        lines.append(row("BERTopic 0.17 defaults", score(truth, topics), bertopic_seconds))
        ratio = f"Clustering time ratio feedbackloop / BERTopic: {seconds / bertopic_seconds:.3f}. "
    kept, before = identity_kept(vectors)
    notes = (f"Same input twice identical: {np.array_equal(labels, again)}. Shuffled input, ARI against the "
             f"unshuffled run: {stability:.3f}. {ratio}Identity: after adding 10% more items, {kept} of "
             f"{before} themes ({kept / before:.0%}) keep their id.")
    section = "\n".join([
        "## Clustering: Banking77 test",
        "",
        f"`python bench/cluster_bench.py` on {datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, "
        f"{os.cpu_count()} cores; {len(texts)} texts, {len(set(truth))} intents (not given to the pipelines); "
        "bundled MiniLM embeddings, precomputed; times after a warm-up run.",
        "",
        *lines,
        "",
        notes,
        "",
    ])
    publish(section, not args.no_write)


def publish(section: str, write: bool) -> None:
    """Print a benchmark's section and, unless asked not to, put it into RESULTS.md."""
    print(section)
    if write:
        write_section(section)


def write_section(section: str) -> None:
    """Replace this benchmark's section of RESULTS.md, keeping the others."""
    heading = section.splitlines()[0]
    existing = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n\n"
    parts = existing.split("\n## ")
    kept = [parts[0].rstrip() + "\n"] + ["## " + p.rstrip() + "\n" for p in parts[1:]
                                         if not ("## " + p).startswith(heading)]
    RESULTS.write_text("\n".join(kept + [section]), encoding="utf-8")


if __name__ == "__main__":
    main()
