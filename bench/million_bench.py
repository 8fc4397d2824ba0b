"""A million items: full re-clustering through the database, and incremental assignment after it (issue 17).

    python bench/million_bench.py [--items 1000000] [--db /tmp/million/million.db] [--no-write]

Items are the real Banking77 texts (train and test) and copies of them whose embeddings are the real ones
plus small Gaussian noise, renormalised (bench/scale_bench.py's corpus), stored in a SQLite database
(the default; bulk inserts, embeddings precomputed, so no model runs for them). Each step runs in a process
of its own, so its peak resident memory is its own:

1. build: migrate a fresh database and insert the items (not timed against the targets);
2. recluster: ``core.themes.build.recluster`` on every item and commit: embeddings streamed from the database
   in chunks, the clusterer (a sample beyond ``max_exact``, every item then joins its nearest theme), names
   (ranked with the MiniLM embedder), areas, memberships written in batches;
3. assign: 2,000 new items (embedded, perturbed copies) join their themes through ``assign_embedded``, the
   themes queue's task (the embedding queue's look for work, which finds nothing to embed, timed apart):
   per item milliseconds over the whole call, the embedder already loaded (as in a worker,
   which loads it once, for its first batch); new themes are named in the call, so their cost is included.

Targets (issue 17): re-cluster <= 5 minutes and <= 8 GiB; incremental assignment <= 5 ms per item.
Results go into the "A million items" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, insert, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.cluster_bench import publish  # noqa: E402
from bench.scale_bench import corpus  # noqa: E402
from core.loop import FeedbackLoop  # noqa: E402
from core.models import FeedbackItem, Theme, ThemeMembership  # noqa: E402
from core.settings import Settings  # noqa: E402

CHUNK = 20_000
NEW_ITEMS = 2_000
SECTION = "## A million items (issue 17)"


def open_loop(db: Path) -> FeedbackLoop:
    settings = Settings(database_url=f"sqlite:///{db}", secrets_dir=db.parent / "secrets",
                        enrichment_model="rules")
    return FeedbackLoop(settings)


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def build(db: Path, items: int) -> dict[str, float]:
    db.parent.mkdir(parents=True, exist_ok=True)
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)
    texts, vectors = corpus(items + NEW_ITEMS)
    loop = open_loop(db)
    loop.migrate()
    start = time.perf_counter()
    now = datetime.now(UTC)
    with loop.engine.begin() as connection:
        for first in range(0, items + NEW_ITEMS, CHUNK):
            last = min(first + CHUNK, items + NEW_ITEMS)
            connection.execute(insert(FeedbackItem), [{
                "id": i + 1, "channel": "import", "external_id": str(i + 1), "text_original": texts[i],
                "text_redacted": texts[i], "created_at": now - timedelta(seconds=items - i), "received_at": now,
                "updated_at": now, "metadata_json": {},
                # The last NEW_ITEMS arrive after the re-clustering: embedded, not yet in a theme.
                "embedding": vectors[i].tobytes() if i < items else None,
                "embedding_model": "minilm" if i < items else None} for i in range(first, last)])
            print(f"  stored {last:,} of {items + NEW_ITEMS:,} items", file=sys.stderr, flush=True)
    loop.close()
    return {"seconds": time.perf_counter() - start, "peak_gib": peak_gib()}


def recluster_step(db: Path, items: int) -> dict[str, float]:
    from core.themes.build import recluster

    loop = open_loop(db)
    before = peak_gib()
    start = time.perf_counter()
    with loop.session() as session:
        report = recluster(loop, session)
    seconds = time.perf_counter() - start
    with loop.session() as session:
        themed = int(session.scalar(select(func.count()).select_from(ThemeMembership)) or 0)
    loop.close()
    return {"seconds": seconds, "peak_gib": peak_gib(), "before_gib": before, "themes": report.themes,
            "areas": report.areas, "unthemed": report.unthemed, "themed": themed, "items": report.items}


def assign_step(db: Path, items: int) -> dict[str, float]:
    from core.themes.build import embed_pending
    from core.themes.incremental import assign_embedded

    _, vectors = corpus(items + NEW_ITEMS)
    loop = open_loop(db)
    with loop.engine.begin() as connection:  # a rerun of this step starts where the re-clustering left off:
        # its memberships carry a score (the cosine to the centre), incremental assignment's none.
        connection.execute(delete(ThemeMembership).where(ThemeMembership.score.is_(None)))
        connection.execute(delete(Theme).where(Theme.id.not_in(select(ThemeMembership.theme_id))))
    # A worker's embedder is loaded once per process (about 8 s here), when it embeds its first batch, long
    # before it themes anything: the timed call starts with it loaded, as the worker's does.
    loop.embedder.embed(["warm up"])
    with loop.engine.begin() as connection:  # the new items are embedded now (as if by the worker): they are due
        for i in range(items, items + NEW_ITEMS):
            connection.execute(FeedbackItem.__table__.update().where(FeedbackItem.id == i + 1)
                               .values(embedding=vectors[i].tobytes(), embedding_model="minilm"))
    start = time.perf_counter()
    with loop.session() as session:  # the embedding queue's look for work: nothing is left to embed
        embedded = embed_pending(loop, session)
    pending_scan_s = time.perf_counter() - start
    start = time.perf_counter()
    with loop.session() as session:  # the themes queue's task: what a worker runs for these items
        report = assign_embedded(loop, session)
    seconds = time.perf_counter() - start
    loop.close()
    return {"seconds": seconds, "ms_per_item": 1000 * seconds / NEW_ITEMS, "joined": report.joined,
            "pending_scan_s": pending_scan_s, "embedded": embedded, "new_themes": report.new_themes,
            "waiting": report.waiting, "peak_gib": peak_gib()}


STEPS = {"build": build, "recluster": recluster_step, "assign": assign_step}


def run_step(step: str, db: Path, items: int) -> dict[str, float]:
    """One step in a process of its own; its answer is the last line it prints."""
    done = subprocess.run([sys.executable, __file__, "--step", step, "--db", str(db), "--items", str(items)],
                          check=True, stdout=subprocess.PIPE, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/million/million.db"))
    parser.add_argument("--step", choices=sorted(STEPS), help="run one step here (used by the bench itself)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.step:
        print(json.dumps(STEPS[args.step](args.db, args.items)))
        return
    load_before = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    figures = {}
    for step in STEPS:
        print(f"{step}...", file=sys.stderr, flush=True)
        figures[step] = run_step(step, args.db, args.items)
        print(f"{step}: {figures[step]}", file=sys.stderr, flush=True)
    load_after = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    built, clustered, assigned = figures["build"], figures["recluster"], figures["assign"]
    section = "\n".join([
        SECTION, "",
        f"`python bench/million_bench.py --items {args.items}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()}, {os.cpu_count()} cores, SQLite; load average {load_before} before, "
        f"{load_after} after. Embeddings precomputed (Banking77 plus perturbed copies); each step in its own "
        "process.", "",
        "| step | seconds | peak resident memory | result |",
        "|---|---|---|---|",
        f"| build: {args.items + NEW_ITEMS:,} items stored | {built['seconds']:.0f} | "
        f"{built['peak_gib']:.2f} GiB | - |",
        f"| full re-cluster (`recluster`, committed) | **{clustered['seconds']:.0f}** | "
        f"**{clustered['peak_gib']:.2f} GiB** | {int(clustered['themes'])} themes, {int(clustered['areas'])} areas, "
        f"{int(clustered['unthemed']):,} unthemed of {int(clustered['items']):,} |",
        f"| the embedding step's look for work (`embed_pending`: {int(assigned['embedded'])} to embed) | "
        f"{assigned['pending_scan_s']:.1f} | - | a scan of every item, once per worker round |",
        f"| {NEW_ITEMS:,} new items assigned (`assign_embedded`, the themes task) | {assigned['seconds']:.1f} | "
        f"{assigned['peak_gib']:.2f} GiB | **{assigned['ms_per_item']:.2f} ms per item**, "
        f"{int(assigned['joined']):,} joined a theme, {int(assigned['new_themes'])} new themes, "
        f"{int(assigned['waiting']):,} waiting |",
        "",
    ])
    publish(section, not args.no_write)


if __name__ == "__main__":
    main()
