"""Workspace pages on 100,000 items: time the overview and a theme page's queries.

    python bench/workspace_bench.py [--items 100000] [--themes 1000] [--reps 50] [--database-url URL]
                                    [--no-write]

Seeds a fresh database (a SQLite file in a temporary folder unless ``--database-url`` names another,
e.g. an empty PostgreSQL database) with a realistic skew: theme sizes follow a Zipf law (a few big
themes, a long tail), items spread over 90 days with a few themes spiking in the last two days,
several channels, sentiments, customer tiers and account values on some items, and some tickets and
audit entries. Then each scenario runs ``--reps`` times after two warm-up calls, each call in a new
session as a request would be, and p50/p95 go to stdout and to the "Workspace pages ... (SQLite)" or
"(PostgreSQL)" section of bench/RESULTS.md (PostgreSQL with migration 0006's pg_trgm index on the
texts). ``seed_workspace`` is importable, to time the HTTP pages on the same data.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import insert
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.db import make_engine, make_session_factory, migrate  # noqa: E402
from core.models import AuditEntry, Delivery, FeedbackItem, Owner, Theme, ThemeMembership  # noqa: E402
from core.themes.overview import overview  # noqa: E402
from core.themes.overview_filter import OverviewFilter  # noqa: E402
from core.themes.timeline import (  # noqa: E402
    channel_mix,
    theme_history,
    theme_items,
    theme_tickets,
    theme_timeline,
)

WORDS = (
    "login", "password", "reset", "export", "csv", "invoice", "refund", "billing", "dashboard", "slow", "crash",
    "mobile", "android", "ios", "search", "filter", "sort", "notification", "email", "webhook", "api", "token",
    "timeout", "sync", "calendar", "upload", "photo", "payment", "card", "declined", "currency", "report",
    "chart", "permission", "admin", "role", "team", "invite", "sso", "saml", "dark", "mode", "font",
    "accessibility", "keyboard", "shortcut", "offline", "cache", "memory", "battery", "latency", "error",
    "integration", "slack", "jira", "github", "zapier", "pricing", "plan", "trial", "cancel", "subscription",
    "receipt", "tax"
)
CHANNELS = ("zendesk", "github", "discourse", "intercom", "slack", "email", "api")
CHANNEL_WEIGHTS = (0.30, 0.20, 0.15, 0.12, 0.10, 0.08, 0.05)
KINDS = ("bug", "feature_request", "question", "praise", None)
KIND_WEIGHTS = (0.35, 0.30, 0.20, 0.05, 0.10)
TIERS = ("free", "pro", "business", "enterprise")
TIER_VALUES = (0.0, 600.0, 6_000.0, 60_000.0)
STATUSES = ("new", "triaged", "planned", "in_progress", "done", "declined", "ignored", "archived")
STATUS_WEIGHTS = (0.50, 0.20, 0.10, 0.08, 0.06, 0.03, 0.01, 0.02)
SPAN = timedelta(days=90)
CHUNK = 5_000


@dataclass(frozen=True)
class SeedSummary:
    items: int
    themes: int
    big_theme_id: int  # the largest theme
    small_theme_id: int  # one of the smallest
    seconds: float


def seed_workspace(database_url: str, items: int = 100_000, themes: int = 1_000, now: datetime | None = None,
                   seed: int = 42) -> SeedSummary:
    """Migrate an empty database and fill it with ``items`` feedback items in ``themes`` themes (bulk inserts)."""
    started = time.perf_counter()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    rng = np.random.default_rng(seed)
    engine = make_engine(database_url)
    migrate(engine)
    themed = int(items * 0.95)  # the rest waits for the next clustering: it counts in share of voice only
    weights = 1.0 / np.arange(1, themes + 1) ** 1.1
    sizes = 1 + rng.multinomial(themed - themes, weights / weights.sum())
    theme_of_item = np.full(items, -1)
    theme_of_item[:themed] = rng.permutation(np.repeat(np.arange(themes), sizes))
    # Themes 5..34 (by size) spike: 40% of their items in the last two days; the rest spread evenly.
    spiking = np.zeros(themes, dtype=bool)
    spiking[5:35] = True
    age_s = rng.uniform(0, SPAN.total_seconds(), items)
    burst = (theme_of_item >= 0) & spiking[np.maximum(theme_of_item, 0)] & (rng.random(items) < 0.4)
    age_s[burst] = rng.uniform(0, 2 * 86_400, int(burst.sum()))
    # Items arrive in time order, so ids grow with created_at, as they do when intake stores them.
    by_time = np.argsort(-age_s, kind="stable")
    theme_of_item, age_s = theme_of_item[by_time], age_s[by_time]
    theme_mood = rng.uniform(-0.6, 0.4, themes)
    sentiment = np.clip(np.where(theme_of_item >= 0, theme_mood[np.maximum(theme_of_item, 0)], 0.0)
                        + rng.normal(0, 0.35, items), -1, 1)
    channel = rng.choice(len(CHANNELS), items, p=CHANNEL_WEIGHTS)
    kind = rng.choice(len(KINDS), items, p=KIND_WEIGHTS)
    tier = np.where(rng.random(items) < 0.3, rng.choice(len(TIERS), items, p=(0.4, 0.3, 0.2, 0.1)), -1)
    theme_words = rng.integers(0, len(WORDS), (themes, 5))
    with engine.begin() as connection:
        connection.execute(insert(Owner), [{"name": f"team-{n}", "kind": "team", "created_at": now}
                                                     for n in range(12)])
        statuses = rng.choice(len(STATUSES), themes, p=STATUS_WEIGHTS)
        owners = np.where(rng.random(themes) < 0.6, rng.integers(1, 13, themes), 0)
        connection.execute(insert(Theme), [
            {"id": t + 1, "label": " ".join(WORDS[w] for w in theme_words[t][:3]) + f" #{t + 1}",
             "keywords": [WORDS[w] for w in theme_words[t]], "quotes": [], "status": STATUSES[statuses[t]],
             "owner_id": int(owners[t]) or None, "label_locked": False, "created_at": now - SPAN,
             "updated_at": now} for t in range(themes)])
        filler = rng.integers(0, len(WORDS), (items, 14))
        rare = rng.random(items) < 0.005  # a word few items hold, as most searches are
        for first in range(0, items, CHUNK):
            rows = []
            for i in range(first, min(first + CHUNK, items)):
                t = theme_of_item[i]
                words = [WORDS[w] for w in filler[i]]
                if t >= 0:
                    words[::3] = [WORDS[w] for w in theme_words[t][: len(words[::3])]]
                text = " ".join(words) + (" passkey" if rare[i] else "")
                created = now - timedelta(seconds=float(age_s[i]))
                rows.append({
                    "id": i + 1, "channel": CHANNELS[channel[i]], "external_id": str(i + 1),
                    "author_pseudonym": f"p{rng.integers(0, 20_000)}", "text_original": text, "text_redacted": text,
                    "url": None, "created_at": created, "received_at": created, "updated_at": created,
                    "metadata_json": {}, "kind": KINDS[kind[i]], "sentiment": float(sentiment[i]),
                    "customer_tier": TIERS[tier[i]] if tier[i] >= 0 else None,
                    "account_value": TIER_VALUES[tier[i]] * float(rng.uniform(0.5, 2.0)) if tier[i] >= 0 else None})
            connection.execute(insert(FeedbackItem), rows)
        members = np.flatnonzero(theme_of_item >= 0)
        for first in range(0, len(members), CHUNK):
            connection.execute(insert(ThemeMembership), [
                {"item_id": int(i) + 1, "theme_id": int(theme_of_item[i]) + 1, "source": "machine",
                 "score": 0.8, "created_at": now} for i in members[first:first + CHUNK]])
        ticketed = range(1, min(themes, 60) + 1)
        connection.execute(insert(Delivery), [
            {"theme_id": t, "owner_id": None, "target_type": target, "idempotency_key": f"{target}:{t}",
             "options": {}, "state": "delivered", "attempts": 1, "external_ref": f"{target.upper()}-{t}",
             "url": f"https://tracker.example/{target}/{t}", "title": f"theme {t}", "body": "",
             "delivered_volume": int(sizes[t - 1]), "external_status": "open", "consecutive_failures": 0,
             "created_at": now, "updated_at": now}
            for t in ticketed for target in (("jira", "github") if t <= 10 else ("jira",))])
        connection.execute(insert(AuditEntry), [
            {"at": now - timedelta(minutes=int(n)), "actor": "user:pm@example.com", "action": "set_status",
             "entity_type": "theme", "entity_id": str(int(rng.integers(1, themes + 1))),
             "details": {"from": "new", "to": "triaged"}} for n in range(3_000)])
    if engine.dialect.name == "postgresql":  # as autovacuum leaves a settled database: statistics, visibility map
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    engine.dispose()
    order = np.argsort(-sizes, kind="stable")
    return SeedSummary(items=items, themes=themes, big_theme_id=int(order[0]) + 1,
                       small_theme_id=int(order[-1]) + 1, seconds=time.perf_counter() - started)


def theme_page(session: Session, theme_id: int, search: str = "") -> None:
    """What the theme page asks for: timeline, channel mix, first page of items, tickets, history."""
    theme_timeline(session, theme_id, grain="day")
    channel_mix(session, theme_id)
    theme_items(session, theme_id, search=search, page=1, per_page=50)
    theme_tickets(session, theme_id)
    theme_history(session, theme_id, limit=50)


def time_calls(factory: Callable[[], Session], call: Callable[[Session], object],
               reps: int) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of each of ``reps`` calls, each in a new session, after two warm-ups.

    With SQLite the database works in this process, so its CPU time is the server's work without the
    waits for a core that a busy machine adds to the wall time.
    """
    walls, cpus = [], []
    for rep in range(reps + 2):
        with factory() as session:
            start, cpu_start = time.perf_counter(), time.process_time()
            call(session)
            wall, cpu = (time.perf_counter() - start) * 1000, (time.process_time() - cpu_start) * 1000
        if rep >= 2:
            walls.append(wall)
            cpus.append(cpu)
    return walls, cpus


def percentile(values: list[float], share: float) -> float:
    return float(np.percentile(values, share * 100))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--themes", type=int, default=1_000)
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--database-url", help="an empty database to seed (default: a new SQLite file)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    folder = tempfile.TemporaryDirectory(prefix="workspace-bench-")
    url = args.database_url or f"sqlite:///{Path(folder.name) / 'workspace.db'}"
    load_before = os.getloadavg()
    now = datetime.now(UTC)
    summary = seed_workspace(url, items=args.items, themes=args.themes, now=now)
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":  # bulk-loaded: give the planner its statistics, as autovacuum would
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE")
    factory = make_session_factory(engine)
    big, small = summary.big_theme_id, summary.small_theme_id
    scenarios: list[tuple[str, Callable[[Session], object]]] = [
        ("overview, defaults (30d)", lambda s: overview(s, OverviewFilter(), now=now)),
        ("overview, search (0.5% of items)", lambda s: overview(s, OverviewFilter(search="passkey"), now=now)),
        ("overview, search (32% of items)", lambda s: overview(s, OverviewFilter(search="refund"), now=now)),
        ("overview, github+2 statuses+90d", lambda s: overview(
            s, OverviewFilter(channel="github", statuses=("new", "triaged"), window="90d", sort="volume"), now=now)),
        ("overview, all time, page 3", lambda s: overview(s, OverviewFilter(window="all", page=3), now=now)),
        (f"theme page, big ({_size(factory, big)} items)", lambda s: theme_page(s, big)),
        ("theme page, big, item search", lambda s: theme_page(s, big, search="timeout")),
        (f"theme page, small ({_size(factory, small)} items)", lambda s: theme_page(s, small)),
    ]
    results = [(name, time_calls(factory, call, args.reps)) for name, call in scenarios]
    engine.dispose()
    folder.cleanup()
    load_after = os.getloadavg()
    in_process = engine.dialect.name == "sqlite"
    table = ["| scenario | calls | p50 ms | p95 ms | max ms | CPU p95 ms |", "|---|---|---|---|---|---|"]
    table += [f"| {name} | {len(walls)} | {statistics.median(walls):.1f} | {percentile(walls, 0.95):.1f} | "
              f"{max(walls):.1f} | {f'{percentile(cpus, 0.95):.1f}' if in_process else '-'} |"
              for name, (walls, cpus) in results]
    worst = max(percentile(walls, 0.95) for _, (walls, _) in results)
    worst_cpu = max(percentile(cpus, 0.95) for _, (_, cpus) in results)
    database = "SQLite (WAL file)" if in_process else "PostgreSQL (same machine, default settings)"
    intro = (
        f"`python bench/workspace_bench.py` on {now:%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} "
        f"cores shared with other runs (load average {load_before[0]:.2f} at the start, {load_after[0]:.2f} at "
        f"the end), Python {platform.python_version()}, {database}. Seeded {summary.items:,} items in "
        f"{summary.themes:,} themes (Zipf sizes, 30 spiking, 7 channels, 30% with a customer tier) in "
        f"{summary.seconds:.1f} s. Query-layer time per call (core/themes/overview.py, timeline.py), each call "
        "in a new session, after two warm-up calls; HTTP and template time are not included.")
    if in_process:
        intro += (" CPU: this process's CPU time (SQLite works in it), i.e. without the waits for a core that a "
                  "busy machine adds.")
    # Headings none of which starts another, so each run replaces only its own section.
    kind = "SQLite" if in_process else "PostgreSQL"
    section = "\n".join([
        f"## Workspace pages on {summary.items:,} items ({kind})", "", textwrap.fill(intro, 105), "", *table, "",
        f"Worst p95: **{worst:.1f} ms** wall" + (f", {worst_cpu:.1f} ms CPU" if in_process else "")
        + f"; target p95 <= 300 ms: **{'met' if worst <= 300 else 'not met'}** (wall).", ""])
    print(section)
    if not args.no_write:
        from bench.cluster_bench import write_section  # its section writer keeps the other sections

        write_section(section)


def _size(factory: Callable[[], Session], theme_id: int) -> int:
    with factory() as session:
        return sum(share.items for share in channel_mix(session, theme_id))


if __name__ == "__main__":
    main()
