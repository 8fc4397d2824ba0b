"""Theme names benchmark: Banking77 test clustered by the shipped pipeline, names scored against intent names.

    python bench/names_bench.py [--data ../shared/data/banking77/test.csv] [--samples 20] [--no-write]

The pipeline never sees the intents; ../shared/tools/score_labels.py scores each theme's name against
the name of the intent most of its items carry (MiniLM similarity), and counts fragments, duplicates and
words. Four namings of the same clustering are scored side by side: the old keyword title, the single
most typical sentence of each theme, the name ranked by F-beta alone (no embedder) and the shipped name
(candidates ranked by the embedder, MiniLM, closeness to the theme centroid). On a corpus whose categories are numbers
(../shared/data/generality) the similarity means nothing; the other figures and the samples still do.
Results go to stdout and, for Banking77, into the "Theme names (issue 18)" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.cluster_bench import publish  # noqa: E402
from clustering.labels import ThemeLabeller, class_tfidf_keywords, readable_title  # noqa: E402
from clustering.names import theme_names  # noqa: E402
from clustering.pipeline import ThemePipeline, ThemeResult  # noqa: E402
from clustering.spectral import SpectralThemeClusterer  # noqa: E402
from clustering.vectors import unit  # noqa: E402

SHARED = ROOT.parent / "shared"
DEFAULT_DATA = SHARED / "data" / "banking77" / "test.csv"
SCORER = SHARED / "tools" / "score_labels.py"
# Embeddings are cached outside the repository: they are large and derived from data we may not ship.
CACHE = Path(tempfile.gettempdir()) / "feedbackloop-names-bench"


def embeddings_for(texts: list[str], data: Path, embedder: Any) -> np.ndarray:
    """MiniLM embeddings of the texts, cached by the file's hash and column (embedding is not measured)."""
    digest = hashlib.sha256(data.read_bytes() + "\0".join(texts[:1]).encode()).hexdigest()[:16]
    cache = CACHE / f"{data.stem}-{digest}-minilm.npy"
    if cache.exists():
        return np.load(cache)
    vectors = embedder.embed(texts)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def keyword_titles(texts: Sequence[str], result: ThemeResult) -> dict[int, str]:
    """The titles shipped before issue 18: up to three c-TF-IDF keywords joined by middle dots."""
    return {t: readable_title(words) for t, words in class_tfidf_keywords(texts, result.labels).items()}


def typical_sentences(texts: Sequence[str], vectors: np.ndarray, result: ThemeResult) -> dict[int, str]:
    """The reference the issue quotes: each theme's member closest to its centroid, verbatim."""
    names = {}
    for theme in result.themes:
        members = np.flatnonzero(result.labels == theme)
        names[theme] = texts[int(members[np.argmax(vectors[members] @ unit(vectors[members].mean(axis=0)))])]
    return names


def score(data: Path, label_column: str, labels: np.ndarray, names: dict[int, str]) -> dict[str, float]:
    """Write the clustering as `feedbackloop cluster` would and run the shared scorer on it."""
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "out.csv"
        with output.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["theme_id", "theme_label"])
            writer.writerows((int(t), names.get(int(t), "")) for t in labels)
        done = subprocess.run([sys.executable, str(SCORER), str(data), str(output), label_column],
                              capture_output=True, text=True, check=True, cwd=SCORER.parent)
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def row(name: str, figures: dict[str, float]) -> str:
    return (f"| {name} | {figures['label_sim']:.3f} | {figures['label_sim_one_to_one']:.3f} | "
            f"{figures['fragments']:.1%} | {figures['duplicates']:.1%} | {figures['words']:.2f} |")


def samples(result: ThemeResult, count: int) -> list[str]:
    """The names of the largest themes, keywords beside them, for a person to read."""
    sizes = {t: int((result.labels == t).sum()) for t in result.themes}
    biggest = sorted(sizes, key=lambda t: (-sizes[t], t))[:count]
    return [f"- {result.themes[t].title} ({sizes[t]}; {', '.join(result.themes[t].keywords[:4])})"
            for t in biggest]


def area_figures(result: ThemeResult, count: int) -> list[str]:
    """How the area names read: how many repeat a theme's name (content words in any order), whether they
    are distinct, their length, and the largest areas' names beside their themes'."""
    from clustering.names import content_key

    theme_keys = {content_key(info.title) for info in result.themes.values()}
    titles = [info.title for info in result.areas.values()]
    repeats = sum(content_key(title) in theme_keys for title in titles)
    distinct = len({content_key(title) for title in titles}) == len(titles)
    words = sum(len(title.split()) for title in titles) / max(len(titles), 1)
    area_rows = result.area_labels()
    sizes = {a: int((area_rows == a).sum()) for a in result.areas}
    lines = [f"Areas: {len(titles)}; names that are a theme's name: {repeats}; all distinct: {distinct}; "
             f"{words:.2f} words. Largest areas, name (items; its themes' names):", ""]
    for area in sorted(sizes, key=lambda a: (-sizes[a], a))[:count]:
        themes = [result.themes[t].title for t, a in sorted(result.area_of_theme.items()) if a == area]
        lines.append(f"- {result.areas[area].title} ({sizes[area]}; {'; '.join(themes[:5])}"
                     f"{'; ...' if len(themes) > 5 else ''})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="category")
    parser.add_argument("--samples", type=int, default=12, help="How many of the largest themes to show.")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave RESULTS.md alone.")
    args = parser.parse_args()
    with args.data.open(newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    texts = [r[args.text_column] for r in records]
    from plugins.minilm_embedder import make_embedder

    embedder = make_embedder()
    vectors = embeddings_for(texts, args.data, embedder)
    started = time.perf_counter()
    result = ThemePipeline(SpectralThemeClusterer(), ThemeLabeller(embedder=embedder)).run(texts, vectors)
    pipeline_seconds = time.perf_counter() - started
    started = time.perf_counter()
    again = theme_names(texts, result.labels, vectors, embedder)
    with_embedder = time.perf_counter() - started
    started = time.perf_counter()
    f_beta_only = theme_names(texts, result.labels)
    without_embedder = time.perf_counter() - started
    namings: list[tuple[str, Callable[[], dict[int, str]]]] = [
        ("keyword titles (before)", lambda: keyword_titles(texts, result)),
        ("most typical sentence", lambda: typical_sentences(texts, vectors, result)),
        ("theme names, F-beta order (no embedder)", lambda: f_beta_only),
        ("theme names (shipped, embedder)", lambda: {t: info.title for t, info in result.themes.items()}),
    ]
    lines = ["| naming | label_sim | one-to-one | fragments | duplicates | words |", "|---|---|---|---|---|---|"]
    lines += [row(name, score(args.data, args.label_column, result.labels, make())) for name, make in namings]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    section = "\n".join([
        "## Theme names (issue 18)",
        "",
        f"`python bench/names_bench.py --data {args.data.name}` on {datetime.now(UTC):%Y-%m-%d}, "
        f"{platform.machine()}, {os.cpu_count()} cores, load average {load}; {len(texts)} texts, "
        f"{len(result.themes)} themes (spectral, K found), scored by ../shared/tools/score_labels.py.",
        "",
        *lines,
        "",
        f"Naming alone ({len(result.themes)} themes, load {load}): {with_embedder:.1f} s with the embedder, "
        f"{without_embedder:.1f} s without; the whole pipeline (clustering, theme and area names) "
        f"{pipeline_seconds:.1f} s. Same input twice, same names: "
        f"{again == {t: info.title for t, info in result.themes.items()}}. Largest themes, name "
        "(items; first keywords):",
        "",
        *samples(result, args.samples),
        "",
        *area_figures(result, args.samples),
        "",
    ])
    publish(section, not args.no_write and args.data == DEFAULT_DATA)


if __name__ == "__main__":
    main()
