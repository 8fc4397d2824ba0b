"""SIGKILL in the middle of a burst on the API: every item answered 201 is stored, none twice.

A real ``feedbackloop serve`` process takes ``POST /api/v1/feedback`` from several concurrent clients:
single items and batches, each with explicit external ids, and now and then a whole earlier request sent
again (what a client does that did not see its answer). It is killed with SIGKILL while requests are in
flight. Checked, on SQLite and on PostgreSQL:

- at the moment a 201 arrives, its items are already committed (read from another connection), so a 201
  can never precede its commit;
- after a restart, every item of every 201 is there, none twice (channel + external id), and each batch
  that was not re-sent is there whole or not at all;
- sending every request again (clients retrying what they are unsure of) leaves each item exactly once.

The webhook path has the same test in tests/test_intake_durability.py.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine

from tests.support.burst import Burst, Post, stored_counts
from tests.support.server import free_port, start_server

KEY = "durability-api-key-0123"
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
CHANNEL = "api-burst"
ITEMS = 1200
# Sizes of consecutive requests: a single item (sent as one item, not a batch), then batches.
SIZES = (1, 5, 1, 20, 1, 2)
TEXTS = (
    "The invoice PDF shows the wrong VAT number for order {n}",
    "Search ignores accents, so café never finds cafe (report {n})",
    "Please let us export the audit log as CSV, ticket {n}",
    "The app logs me out every few minutes on the train, case {n}",
    "Great support today, the refund for {n} came through in an hour",
)


def plan() -> list[Post]:
    """The burst: requests of SIZES in turn; every fifth request is followed by one sent before it, again."""
    posts: list[Post] = []
    next_id = 0
    while next_id < ITEMS:
        numbers = range(next_id, min(ITEMS, next_id + SIZES[len(posts) % len(SIZES)]))
        next_id = numbers.stop
        items = [{"text": TEXTS[n % len(TEXTS)].format(n=n), "channel": CHANNEL, "external_id": f"item-{n}",
                  "author": f"customer-{n}"} for n in numbers]
        body = items[0] if len(items) == 1 else {"items": items}
        posts.append(Post("/api/v1/feedback", json.dumps(body).encode(), tuple(f"item-{n}" for n in numbers)))
        if len(posts) % 5 == 0:
            earlier = posts[-3]
            posts.append(Post(earlier.path, earlier.content, earlier.ids, resent=True))
    return posts


def test_acknowledged_api_items_survive_sigkill(database_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "FEEDBACKLOOP_DATABASE_URL": database_url, "FEEDBACKLOOP_LOAD_PLUGINS": "",
           "FEEDBACKLOOP_ADMIN_KEY": KEY, "HF_HUB_OFFLINE": "1",
           # One key sends the whole burst, twice: its rate limit is not what this test is about.
           "FEEDBACKLOOP_RATE_LIMIT_PER_KEY": ""}
    posts, port = plan(), free_port()
    engine = create_engine(database_url)
    server = start_server(env, port, tmp_path)
    try:
        # Killed once a quarter of the items is acknowledged: the other clients' requests are in flight then.
        burst = Burst(port, engine, CHANNEL, lambda _post: HEADERS).send(posts, kill_after=ITEMS // 4, server=server)
        server.wait()
        assert burst.statuses["connection lost"] > 0 and len(burst.acked) < ITEMS, burst.statuses
        # A re-send that races its original is a duplicate (201), never a 5xx from the unique constraint.
        assert set(burst.statuses) <= {201, "connection lost"}, f"not 201: {burst.statuses}"
        assert not burst.answered_before_commit, "201 answered before the commit"

        server = start_server(env, port, tmp_path)  # restart: SQLite recovers its write-ahead log
        after_kill = stored_counts(engine, CHANNEL)
        assert burst.acked <= set(after_kill), f"acknowledged items lost: {sorted(burst.acked - set(after_kill))[:5]}"
        assert max(after_kill.values()) == 1, "an item stored twice"
        for post in posts:  # one transaction per request: a batch is there whole or not at all
            if not post.resent:
                assert len({external_id in after_kill for external_id in post.ids}) == 1, post.ids

        retry = Burst(port, engine, CHANNEL, lambda _post: HEADERS).send(posts)
        assert retry.statuses == Counter({201: len(posts)}), retry.statuses
        assert not retry.answered_before_commit, "201 answered before the commit"
        final = stored_counts(engine, CHANNEL)
        assert len(final) == ITEMS and set(final.values()) == {1}  # every item, each once
    finally:
        server.terminate()
        server.wait()
        engine.dispose()
