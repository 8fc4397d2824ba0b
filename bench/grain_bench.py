"""Theme grain (issue 18): does the number of themes follow the data's structure?

    python bench/grain_bench.py [--rows 5000] [--bertopic] [--no-write]

Corpora: Banking77 test (77 intents) and the four short-text benchmarks in ../shared/data/generality
(read from there, never copied). Each generality corpus is subsampled to ``--rows`` rows with a fixed seed
(0) to keep the run short on a 2-core machine. Reported per corpus: true K, themes found, NMI / ARI of the
shipped clusterer, and k-means told the true K (BERTopic defaults with --bertopic: slow). The number of
categories is never given to our clusterer. MiniLM embeddings are cached under /tmp/grain.
The area level (clustering/areas.py: the themes grouped, the count found) is scored beside the themes; its
seconds are the grouping's alone, on top of the themes'. With --bertopic, BERTopic is called once before
the timed runs (numba compiles UMAP and HDBSCAN on first use) and a second table says, per corpus, whether
each acceptance line of issue 18 holds. Results go at the end of the "Theme grain (issue 18)" section of
bench/RESULTS.md.
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
# Also run whole: the finest corpus (152 stories), whose groups hold 73 items on average instead of 33 in the
# subsample; the fine grain is where a fixed number of spectral dimensions merged neighbouring groups.
WHOLE = ("googlenews_ts",)
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
    found = ({"banking77 test": (DEFAULT_DATA, 0)} | {name: (GENERALITY / f"{name}.csv", rows) for name in CORPORA}
             | {f"{name}, all rows": (GENERALITY / f"{name}.csv", 0) for name in WHOLE})
    loaded = {}
    for name, (path, limit) in found.items():
        texts, truth = load(path, limit)
        loaded[name] = (texts, truth, embed(texts, name.replace(" ", "_").replace(",", "")))
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
    parser.add_argument("--extra", action="append", type=Path, default=[], metavar="CSV",
                        help="another labelled corpus (text,category), read whole; repeatable "
                             "(bench/intent_corpora.py writes CLINC150 and HWU64 this way)")
    args = parser.parse_args()
    for path in args.extra:
        if not path.is_file():
            parser.error(f"--extra {path}: no such file")
    themes_of: dict[int, np.ndarray] = {}  # the themes of the corpus at hand, for the area level

    def themes(texts: list[str], vectors: np.ndarray, k: int) -> np.ndarray:
        themes_of[id(vectors)] = SpectralThemeClusterer().fit_predict(vectors)
        return themes_of[id(vectors)]

    methods: dict[str, Callable[[list[str], np.ndarray, int], np.ndarray]] = {
        "feedbackloop themes": themes,
        "feedbackloop areas": lambda t, v, k: ThemeAreaGrouper().fit_predict(v, themes_of[id(v)]),
        "k-means, true K": lambda t, v, k: KMeans(k, n_init=3, random_state=0).fit_predict(v),
    }
    loaded = corpora(args.rows)
    for path in args.extra:
        texts, truth = load(path, 0)
        loaded[path.stem] = (texts, truth, embed(texts, path.stem))
    if args.bertopic:
        methods["BERTopic"] = lambda t, v, k: run_bertopic(t, v)[0]
        # Numba compiles UMAP and HDBSCAN on their first call (about 100 s here): that is not clustering time.
        warm_texts, _, warm_vectors = loaded["banking77 test"]
        run_bertopic(warm_texts[:1000], warm_vectors[:1000])
    header = ("| corpus | rows | true K | " + " | ".join(f"{m}: NMI / ARI (groups, seconds)" for m in methods)
              + " |")
    lines = [header, "|" + "---|" * (3 + len(methods))]
    checks: list[str] = []
    for name, (texts, truth, vectors) in loaded.items():
        measured = {method: measure(run, texts, truth, vectors) for method, run in methods.items()}
        cells = [f"{m['nmi']:.3f} / {m['ari']:.3f} ({int(m['themes'])}, {seconds:.1f} s)"
                 for m, seconds in measured.values()]
        lines.append(f"| {name} | {len(texts)} | {len(set(truth))} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
        checks.append(acceptance_row(name, len(set(truth)), measured))
    load_average = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    note = (f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load_average}, generality corpora "
            f"subsampled to {args.rows} rows (seed 0)"
            + (", BERTopic timed after a warm-up call" if args.bertopic else "") + ".\n")
    check_table = "\n".join([CHECK_HEADER, "|" + "---|" * (CHECK_HEADER.count("|") - 1), *checks]) + "\n"
    print(note)
    print(check_table)
    if not args.no_write:
        publish_section("\n".join(lines) + "\n" + note + "\n" + check_table)


CHECK_HEADER = ("| corpus | best level: NMI vs k-means | its count vs true K (x2) | themes' ARI vs BERTopic "
                "| themes' seconds / BERTopic's |")


def acceptance_row(name: str, true_k: int, measured: dict[str, tuple[dict[str, float], float]]) -> str:
    """One row of the acceptance checks: each cell says the figures and whether the line holds."""
    theme, theme_seconds = measured["feedbackloop themes"]
    area, _ = measured["feedbackloop areas"]
    kmeans, _ = measured["k-means, true K"]
    best_name, best = max((("themes", theme), ("areas", area)), key=lambda pair: pair[1]["nmi"])

    def verdict(holds: bool) -> str:
        return "met" if holds else "**not met**"

    count = best["themes"]
    cells = [f"{best_name} {best['nmi']:.3f} vs {kmeans['nmi']:.3f}: {verdict(best['nmi'] >= kmeans['nmi'])}",
             f"{int(count)} for {true_k}: {verdict(true_k / 2 <= count <= true_k * 2)}"]
    if "BERTopic" in measured:
        bertopic, bertopic_seconds = measured["BERTopic"]
        ratio = theme_seconds / max(bertopic_seconds, 1e-9)
        cells += [f"{theme['ari']:.3f} vs {bertopic['ari']:.3f}: {verdict(theme['ari'] >= bertopic['ari'])}",
                  f"{ratio:.2f}: {verdict(ratio <= 0.1)}"]
    else:
        cells += ["not run (--bertopic)", "not run (--bertopic)"]
    return f"| {name} | " + " | ".join(cells) + " |"


def publish_section(body: str) -> None:
    """Add the run at the end of SECTION in RESULTS.md, before the next section (runs accumulate)."""
    text = RESULTS.read_text(encoding="utf-8")
    if SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n`python bench/grain_bench.py` (bundled MiniLM).\n"
    start = text.index(SECTION) + len(SECTION)
    following = text.find("\n## ", start)
    end = len(text) if following < 0 else following
    text = text[:end].rstrip("\n") + "\n\n" + body.rstrip("\n") + "\n" + text[end:]
    RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
