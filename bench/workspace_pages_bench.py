"""The workspace's pages over HTTP on 100,000 items and 1,000 themes: server time per page, p50 and p95.

Seeds the same data as bench/workspace_bench.py (``seed_workspace``), builds the real app over it, signs a
person in, and requests the overview (defaults, a search, filters), a big and a small theme's page and the
triage queue through an in-process client: routing, the session and CSRF dependencies, every query and the
template, with no network in between. Each page is requested ``--reps`` times after two warm-up requests;
the figures go to bench/RESULTS.md ("Workspace pages over HTTP"). Target: p95 <= 300 ms on this 2-core
machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fastapi.testclient import TestClient  # noqa: E402

from api.app import app_factory  # noqa: E402
from api.pages.common import SESSION_COOKIE  # noqa: E402
from bench.workspace_bench import percentile, seed_workspace  # noqa: E402
from core.auth.users import add_user  # noqa: E402
from core.auth.web_sessions import start_session  # noqa: E402
from core.loop import FeedbackLoop  # noqa: E402
from core.settings import get_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--themes", type=int, default=1_000)
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    folder = tempfile.TemporaryDirectory(prefix="workspace-pages-")
    url = f"sqlite:///{Path(folder.name) / 'workspace.db'}"
    load_before = os.getloadavg()
    now = datetime.now(UTC)
    summary = seed_workspace(url, items=args.items, themes=args.themes, now=now)
    # The seeded items carry made-up pseudonyms; any key lets the app start over them.
    os.environ.update({"FEEDBACKLOOP_DATABASE_URL": url, "FEEDBACKLOOP_LOAD_PLUGINS": "",
                       "FEEDBACKLOOP_PSEUDONYM_KEY": "ab" * 32})
    get_settings.cache_clear()
    loop = FeedbackLoop(get_settings())
    with loop.session() as session:
        token = start_session(session, add_user(session, "bench@example.com", "pm"))
        session.commit()
    loop.close()
    app = app_factory()  # the app exactly as `feedbackloop serve` builds it (gc.freeze, switch interval)
    pages = [("overview, defaults", "/"), ("overview, search 'refund'", "/?q=refund"),
             ("overview, channel+status+90d", "/?channel=github&status=new&status=triaged&window=90d&sort=volume"),
             ("overview, all time, page 3", "/?window=all&page=3"),
             ("theme page, big theme", f"/themes/{summary.big_theme_id}"),
             ("theme page, big theme, search", f"/themes/{summary.big_theme_id}?q=timeout"),
             ("theme page, small theme", f"/themes/{summary.small_theme_id}"), ("triage", "/triage")]
    results = []
    with TestClient(app, base_url="http://127.0.0.1") as client:
        client.cookies.set(SESSION_COOKIE, token)
        for name, path in pages:
            times = []
            for rep in range(args.reps + 2):
                started = time.perf_counter()
                answer = client.get(path)
                elapsed = (time.perf_counter() - started) * 1000
                assert answer.status_code == 200, (path, answer.status_code, answer.text[-300:])
                if rep >= 2:
                    times.append(elapsed)
            results.append((name, times))
            print(f"{name:<34} p50 {statistics.median(times):7.1f} ms  p95 {percentile(times, 0.95):7.1f} ms",
                  flush=True)
    folder.cleanup()
    load_after = os.getloadavg()
    worst = max(percentile(times, 0.95) for _, times in results)
    table = ["| page | requests | p50 ms | p95 ms | max ms |", "|---|---|---|---|---|"]
    table += [f"| {name} | {len(times)} | {statistics.median(times):.1f} | {percentile(times, 0.95):.1f} | "
              f"{max(times):.1f} |" for name, times in results]
    section = "\n".join([
        "## Workspace pages over HTTP", "",
        f"`python bench/workspace_pages_bench.py` on {now:%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores shared with other runs (load average {load_before[0]:.2f} at the start, "
        f"{load_after[0]:.2f} at the end), Python {platform.python_version()}, SQLite (WAL file). "
        f"{summary.items:,} items in {summary.themes:,} themes, seeded as in \"Workspace pages on "
        f"{summary.items:,} items\". Server time per page: the real app in process (routing, session and "
        "role checks, queries, template), signed in as a pm; no network.", "",
        *table, "",
        f"Worst p95: **{worst:.1f} ms**; target p95 <= 300 ms: **{'met' if worst <= 300 else 'not met'}**.", ""])
    print(section)
    if not args.no_write:
        from bench.cluster_bench import write_section

        write_section(section)


if __name__ == "__main__":
    main()
