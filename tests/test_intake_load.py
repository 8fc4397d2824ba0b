"""Issue 14, acceptance: ``/healthz`` answers while the biggest requests are being stored.

A real ``feedbackloop serve`` (uvicorn, SQLite file) gets one maximal webhook delivery (long texts up
to the 1 MiB limit) and one maximal API batch (1,000 long texts) at the same time, and ``/healthz`` is
asked every few milliseconds until both are answered. Before the fix the delivery was parsed, scored
and stored on the event loop and /healthz timed out; the issue's target is 200 ms (the figure is in
bench/RESULTS.md), the bound here is generous so that a busy test machine does not fail it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bench.healthz_under_load import CHANNEL, free_port, measure, server_env, start_server

HEALTHZ_BOUND_MS = 2000.0


def test_healthz_answers_while_a_maximal_delivery_and_batch_are_stored(tmp_path: Path) -> None:
    database = tmp_path / "load.db"
    port = free_port()
    server = start_server(server_env(database), port)
    try:
        figures = measure(port, probe_timeout_s=30.0)
    finally:
        server.terminate()
        server.wait()
    summary = figures.summary()
    assert figures.webhook.status == 202 and figures.api.status == 201, summary
    assert figures.healthz_errors == 0 and len(figures.healthz_ms) >= 3, summary  # probed during the load
    assert max(figures.healthz_ms) < HEALTHZ_BOUND_MS, summary
    with sqlite3.connect(database) as connection:
        counts = dict(connection.execute("SELECT channel, COUNT(*) FROM feedback_items GROUP BY channel"))
    assert counts["bench"] == 1000 and counts[CHANNEL] == figures.webhook.body["created"] > 40, counts
