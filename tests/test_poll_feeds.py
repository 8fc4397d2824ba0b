"""The ``feed`` channel type (plugins/feeds.py) against a local server serving recorded RSS and Atom answers:
conditional requests, new and edited entries, 429 with Retry-After, broken answers, the outbound policy."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.clock import aware, utcnow
from core.errors import FeedbackloopError
from core.intake.channels import add_channel
from core.intake.polling import poll_channel, poll_due, poll_statuses
from core.loop import FeedbackLoop
from plugins.poll_http import retry_after_seconds
from tests.support.intake import items
from tests.support.recorded_http import Recorded, RecordedHttp, SeenRequest

FEEDS = Path(__file__).parent / "data" / "feeds"
ATOM = {"Content-Type": "application/atom+xml; charset=utf-8"}


def feed_channel(loop: FeedbackLoop, url: str, name: str = "community") -> None:
    with loop.session() as session:
        add_channel(loop, session, name, "feed", options={"url": url})


def conditional(body: bytes, etag: str, modified: str) -> Callable[[SeenRequest], Recorded]:
    """The feed, or 304 when the request names the same version (RFC 9110, 13.1.2)."""
    def answer(request: SeenRequest) -> Recorded:
        if request.header("If-None-Match") == etag:
            return Recorded(304, headers={"ETag": etag})
        return Recorded(200, body, {**ATOM, "ETag": etag, "Last-Modified": modified})
    return answer


def test_new_entries_become_items_and_an_unchanged_feed_costs_a_304(loop: FeedbackLoop) -> None:
    atom = (FEEDS / "atom.xml").read_bytes()
    modified = "Mon, 30 Nov 2026 18:30:02 GMT"
    with RecordedHttp() as server:
        server.add("/c/feature-requests.atom", conditional(atom, '"v1"', modified))
        feed_channel(loop, server.url("/c/feature-requests.atom"))
        first = poll_channel(loop, "community")
        assert (first.created, first.failed) == (2, 0)
        second = poll_channel(loop, "community")
        assert (second.pages, second.created, second.duplicates) == (1, 0, 0)
        sent = server.requests_to("/c/feature-requests.atom")
    assert sent[0].header("If-None-Match") is None
    assert sent[1].header("If-None-Match") == '"v1"' and sent[1].header("If-Modified-Since") == modified
    assert "feedbackloop" in (sent[0].header("User-Agent") or "")
    stored = {item.external_id: item for item in items(loop)}
    export = stored["urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a"]
    assert export.text_original.startswith("Export to CSV times out on large projects\n\nExporting a project")
    assert export.url == "https://community.example.com/t/export-to-csv-times-out/812"
    assert aware(export.created_at) == datetime(2026, 11, 30, 18, 30, 2, tzinfo=UTC)
    assert export.metadata_json["tags"] == ["export"]
    assert export.metadata_json["feed_title"] == "Acme Community: Feature requests"
    assert export.author_pseudonym and "dana" not in export.author_pseudonym
    dark = stored["urn:uuid:5d2b1c3e-2f41-4c89-bbbb-1f0c9a2e7d10"]
    assert "someone else's words" not in dark.text_original  # a quotation is not this customer's feedback


def test_a_later_fetch_stores_new_entries_and_edits_and_skips_the_rest(loop: FeedbackLoop) -> None:
    with RecordedHttp() as server:
        server.add("/feed", Recorded(200, (FEEDS / "atom.xml").read_bytes(), ATOM),
                   Recorded(200, (FEEDS / "atom_next.xml").read_bytes(), ATOM))
        feed_channel(loop, server.url("/feed"))
        poll_channel(loop, "community")
        later = poll_channel(loop, "community")
    assert (later.created, later.updated, later.duplicates) == (1, 1, 0)
    texts = {item.external_id: item.text_original for item in items(loop)}
    assert len(texts) == 3
    assert texts["urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a"].endswith("Same with 10k rows since Monday.")
    assert "retries arrive every second" in texts["urn:uuid:9b0e4d2a-77c1-4f0e-cccc-3a5d1e8f6b22"]


def test_an_rss_feed(loop: FeedbackLoop) -> None:
    with RecordedHttp() as server:
        server.add("/reports.rss", Recorded(200, (FEEDS / "rss.xml").read_bytes(),
                                            {"Content-Type": "application/rss+xml"}))
        feed_channel(loop, server.url("/reports.rss"), name="status-reports")
        assert poll_channel(loop, "status-reports").created == 2
    stored = {item.external_id: item for item in items(loop)}
    login = stored["report-4411"]
    assert login.text_original == ("Login page slow in the EU region\n\nSince this morning the login page takes "
                                   "20 seconds to load from Frankfurt.")
    assert aware(login.created_at) == datetime(2026, 12, 1, 6, 58, tzinfo=UTC)
    assert login.metadata_json["tags"] == ["performance"]
    assert "reports@example.com" not in str(login.metadata_json)


def test_429_with_retry_after_is_respected(loop: FeedbackLoop) -> None:
    with RecordedHttp() as server:
        server.add("/feed", Recorded(429, "slow down", {"Retry-After": "90"}),
                   Recorded(200, (FEEDS / "atom.xml").read_bytes(), ATOM))
        feed_channel(loop, server.url("/feed"))
        before = utcnow()
        report = poll_channel(loop, "community")
        assert report.throttled == 1 and report.created == 0
        [status] = poll_statuses(loop)
        assert status.throttled_until is not None
        assert before + timedelta(seconds=90) <= aware(status.throttled_until) <= utcnow() + timedelta(seconds=90)
        assert "HTTP 429" in (status.last_error or "") and status.consecutive_failures == 0
        assert poll_due(loop).channels == 0 and poll_channel(loop, "community").channels == 0
        assert len(server.requests_to("/feed")) == 1  # nothing asked before the wait is over
        assert poll_due(loop, now=utcnow() + timedelta(seconds=91)).created == 2
        assert len(server.requests_to("/feed")) == 2


def test_retry_after_as_an_http_date() -> None:
    in_two_minutes = format_datetime(utcnow() + timedelta(seconds=120), usegmt=True)
    assert 100 <= retry_after_seconds(in_two_minutes) <= 120
    assert retry_after_seconds("not a date", default_s=60) == 60
    assert retry_after_seconds(None, default_s=60) == 60
    assert retry_after_seconds("-5") == 0


@pytest.mark.parametrize(("answer", "message"), [
    (Recorded(200, "<html><body>Sign in</body></html>", {"Content-Type": "text/html"}), "not an RSS or Atom feed"),
    (Recorded(503, "maintenance"), "HTTP 503"),
    (Recorded(301, "", {"Location": "http://10.1.2.3/feed"}), "HTTP 301"),  # redirects are not followed
])
def test_a_broken_answer_is_a_recorded_failure(loop: FeedbackLoop, answer: Recorded, message: str) -> None:
    with RecordedHttp() as server:
        server.add("/feed", answer)
        feed_channel(loop, server.url("/feed"))
        report = poll_channel(loop, "community")
    assert report.failed == 1 and message in report.errors["community"]
    [status] = poll_statuses(loop)
    assert message in (status.last_error or "") and status.consecutive_failures == 1
    assert aware(status.next_poll_at) > utcnow()  # type: ignore[operator]


def test_the_outbound_policy_decides_where_a_feed_may_be_fetched_from(loop: FeedbackLoop) -> None:
    with pytest.raises(FeedbackloopError, match="private"), loop.session() as session:
        add_channel(loop, session, "intranet", "feed", options={"url": "http://10.20.30.40/feed.xml"})


def test_a_feed_channel_takes_no_webhooks(client: TestClient, loop: FeedbackLoop) -> None:
    feed_channel(loop, "https://community.example.com/feed.atom")
    answer = client.post("/webhooks/community", content=b"{}", headers={"Content-Type": "application/json"})
    assert answer.status_code == 404 and "polled" in answer.text
