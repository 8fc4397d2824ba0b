"""SIGKILL in the middle of a burst of webhook deliveries: every delivery that was acknowledged is stored
after a restart, and none twice.

A real ``feedbackloop serve`` process (on SQLite, and on PostgreSQL) takes signed deliveries (the signing helper of
tests/support/intake.py) from several concurrent clients and is killed with SIGKILL while they arrive.
Each 2xx is checked right when it arrives: its item is committed already (tests/support/burst.py).
After a restart, every delivery that got a 2xx is in the database; resending the whole burst (what
senders do with unacknowledged deliveries) then leaves exactly one item per delivery. The API path has
the same test in tests/test_api_durability.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from sqlalchemy import create_engine

from bench.http_load import TEXTS  # the bench's texts: one corpus for load and durability
from tests.support.burst import Burst, Post, stored_counts
from tests.support.intake import webhook_headers
from tests.support.server import FEEDBACKLOOP, free_port, start_server

SECRET = "durability-secret-123"
SECRET_ENV = "FEEDBACKLOOP_SECRET_BURST"
CHANNEL = "burst"
BURST = 1200


def deliveries() -> list[Post]:
    # Every text is new: the same author repeating a text is a near-duplicate, which takes the slower
    # linking path and is not what a burst of fresh feedback looks like.
    return [Post(f"/webhooks/{CHANNEL}", json.dumps({"id": f"burst-{n}", "text": TEXTS[n % len(TEXTS)].format(n=n),
                                                     "author": f"customer-{n % 997}"}).encode(),
                 (f"burst-{n}",), delivery=f"burst-{n}") for n in range(BURST)]


def signed(post: Post) -> dict[str, str]:
    return webhook_headers(SECRET, post.content, delivery=post.delivery)  # signed when sent: the timestamp is now


def test_acknowledged_deliveries_survive_sigkill(database_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "FEEDBACKLOOP_DATABASE_URL": database_url, "FEEDBACKLOOP_LOAD_PLUGINS": "",
           SECRET_ENV: SECRET, "HF_HUB_OFFLINE": "1",
           # The whole burst goes to one channel, twice: its rate limit is not what this test is about.
           "FEEDBACKLOOP_RATE_LIMIT_PER_CHANNEL": ""}
    subprocess.run([str(FEEDBACKLOOP), "channels", "add", CHANNEL, "--plugin", "webhook", "--secret-env", SECRET_ENV],
                   env=env, cwd=tmp_path, check=True, capture_output=True)
    posts, port = deliveries(), free_port()
    engine = create_engine(database_url)
    server = start_server(env, port, tmp_path)
    try:
        # Killed once a quarter of the burst is acknowledged, so deliveries are in flight at that moment.
        burst = Burst(port, engine, CHANNEL, signed, clients=16).send(posts, kill_after=BURST // 4, server=server)
        server.wait()
        assert burst.statuses["connection lost"] > 0 and len(burst.acked) < BURST, burst.statuses
        assert set(burst.statuses) <= {202, "connection lost"}, burst.statuses
        assert not burst.answered_before_commit, "a delivery acknowledged before its commit"

        server = start_server(env, port, tmp_path)  # restart: SQLite recovers its write-ahead log
        after_kill = stored_counts(engine, CHANNEL)
        assert burst.acked <= set(after_kill), "an acknowledged delivery was lost"
        assert max(after_kill.values()) == 1, "a delivery stored twice"

        resend = Burst(port, engine, CHANNEL, signed, clients=16).send(posts)
        assert set(resend.statuses) == {202}, resend.statuses
        final = stored_counts(engine, CHANNEL)
        assert len(final) == BURST and set(final.values()) == {1}  # senders retrying everything: each delivery once
    finally:
        server.terminate()
        server.wait()
        engine.dispose()
