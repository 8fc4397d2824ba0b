"""Theme grain (issue 18): does the number of themes follow the data's structure?

    python bench/grain_bench.py [--rows 5000] [--bertopic] [--no-write]

Corpora: Banking77 test (77 intents) and the four short-text benchmarks in ../shared/data/generality
(read from there, never copied). Each generality corpus is subsampled to ``--rows`` rows with a fixed seed
(0) to keep the run short on a 2-core machine. Reported per corpus: true K, themes found, NMI / ARI of the
shipped clusterer, and k-means told the true K (BERTopic defaults with --bertopic: slow). The number of
categories is never given to our clusterer. MiniLM embeddings are cached under /tmp/grain.
The area level (clustering/areas.py: the themes grouped, the count found) is scored beside the themes; its
seconds are the grouping's alone, on top of the themes'. Results go into the "Theme grain (issue 18)"
section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.cluster_bench import DEFAULT_DATA, run_bertopic, score  # noqa: E402
from clustering.areas import ThemeAreaGrouper  # noqa: E402
from clustering.spectral import SpectralThemeClusterer  # noqa: E402

GENERALITY = ROOT.parent / "shared" / "data" / "generality"
CORPORA = ("stackoverflow", "searchsnippets", "biomedical", "googlenews_ts")
CACHE = Path("/tmp/grain")
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Theme grain (issue 18)"


def load(path: Path, rows: int) -> tuple[list[str], list[str]]:
    """Texts and categories, at most ``rows`` of them (a fixed-seed sample, kept in file order)."""
    with path.open(newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    if 0 < rows < len(records):
        chosen = np.sort(np.random.default_rng(0).choice(len(records), rows, replace=False))
        records = [records[i] for i in chosen.tolist()]
    return [r["text"] for r in records], [r["category"] for r in records]


def embed(texts: list[str], name: str) -> np.ndarray:
    """MiniLM embeddings, cached under /tmp by a hash of the texts."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    cache = CACHE / f"{name}-{digest}-minilm.npy"
    if cache.exists():
        return np.load(cache)
    from plugins.minilm_embedder import make_embedder

    vectors = np.asarray(make_embedder().embed(texts), dtype=np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def corpora(rows: int) -> dict[str, tuple[list[str], list[str], np.ndarray]]:
    found = {"banking77 test": (DEFAULT_DATA, 0)} | {name: (GENERALITY / f"{name}.csv", rows) for name in CORPORA}
    loaded = {}
    for name, (path, limit) in found.items():
        texts, truth = load(path, limit)
        loaded[name] = (texts, truth, embed(texts, name.replace(" ", "_")))
    return loaded


def measure(method: Callable[[list[str], np.ndarray, int], np.ndarray], texts: list[str], truth: list[str],
            vectors: np.ndarray) -> tuple[dict[str, float], float]:
    start = time.perf_counter()
    labels = method(texts, vectors, len(set(truth)))
    return score(truth, labels), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000, help="rows per generality corpus (0: all)")
    parser.add_argument("--bertopic", action="store_true", help="also run BERTopic defaults (slow)")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave RESULTS.md alone.")
    args = parser.parse_args()
    themes_of: dict[int, np.ndarray] = {}  # the themes of the corpus at hand, for the area level

    def themes(texts: list[str], vectors: np.ndarray, k: int) -> np.ndarray:
        themes_of[id(vectors)] = SpectralThemeClusterer().fit_predict(vectors)
        return themes_of[id(vectors)]

    methods: dict[str, Callable[[list[str], np.ndarray, int], np.ndarray]] = {
        "feedbackloop themes": themes,
        "feedbackloop areas": lambda t, v, k: ThemeAreaGrouper().fit_predict(v, themes_of[id(v)]),
        "k-means, true K": lambda t, v, k: KMeans(k, n_init=3, random_state=0).fit_predict(v),
    }
    if args.bertopic:
        methods["BERTopic"] = lambda t, v, k: run_bertopic(t, v)[0]
    header = ("| corpus | rows | true K | " + " | ".join(f"{m}: NMI / ARI (groups, seconds)" for m in methods)
              + " |")
    lines = [header, "|" + "---|" * (3 + len(methods))]
    for name, (texts, truth, vectors) in corpora(args.rows).items():
        cells = []
        for method in methods.values():
            measures, seconds = measure(method, texts, truth, vectors)
            cells.append(f"{measures['nmi']:.3f} / {measures['ari']:.3f} ({int(measures['themes'])}, "
                         f"{seconds:.1f} s)")
        lines.append(f"| {name} | {len(texts)} | {len(set(truth))} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    load_average = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    note = (f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load_average}, generality corpora "
            f"subsampled to {args.rows} rows (seed 0).\n")
    print(note)
    if not args.no_write:
        publish_section("\n".join(lines) + "\n" + note)


def publish_section(body: str) -> None:
    """Append the table under SECTION in RESULTS.md (runs accumulate; the newest is last)."""
    text = RESULTS.read_text(encoding="utf-8")
    if SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n`python bench/grain_bench.py` (bundled MiniLM).\n"
    RESULTS.write_text(text.rstrip("\n") + "\n\n" + body, encoding="utf-8")


if __name__ == "__main__":
    main()
