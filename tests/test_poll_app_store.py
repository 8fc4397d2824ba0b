"""The ``app_store`` channel type (plugins/app_store.py) against a local server serving recorded pages of the
App Store's customer reviews feed: pagination, the mark that ends a round, 429 mid-round, and a poller
killed (SIGKILL) between two pages that, started again, asks for nothing twice and stores nothing twice."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path

from core.clock import utcnow
from core.intake.channels import add_channel
from core.intake.poll_state import ChannelPollState
from core.intake.polling import poll_channel, poll_due, poll_statuses
from core.loop import FeedbackLoop
from tests.support.intake import items
from tests.support.poll_faults import held_until, sigkill_poll_while_held
from tests.support.recorded_http import Recorded, RecordedHttp

DATA = Path(__file__).parent / "data" / "app_store"
APP_ID = "1234567890"
JSON = {"Content-Type": "text/javascript; charset=utf-8"}  # what the feed's server sends


def page_path(number: int, country: str = "us") -> str:
    return f"/{country}/rss/customerreviews/page={number}/id={APP_ID}/sortby=mostrecent/json"


def recorded(name: str) -> Recorded:
    return Recorded(200, (DATA / name).read_bytes(), JSON)


def store_channel(loop: FeedbackLoop, base_url: str, **options: str) -> None:
    with loop.session() as session:
        add_channel(loop, session, "ios", "app_store", options={"app_id": APP_ID, "base_url": base_url, **options})


def pages_asked(server: RecordedHttp) -> list[str]:
    return [request.path.split("/")[4] for request in server.requests]


def stored_ids(loop: FeedbackLoop) -> list[str]:
    return sorted(item.external_id for item in items(loop))


ALL_FIVE = ["review-11860555301", "review-11866012398", "review-11871220457", "review-11873988120",
            "review-11874301944"]


def test_the_first_round_reads_every_page_and_the_next_stops_at_the_mark(loop: FeedbackLoop) -> None:
    with RecordedHttp() as server:
        server.add(page_path(1), recorded("page1.json"), recorded("page1_later.json"))
        server.add(page_path(2), recorded("page2.json"))
        store_channel(loop, server.base_url)
        first = poll_channel(loop, "ios")
        assert (first.pages, first.created) == (2, 5)
        assert pages_asked(server) == ["page=1", "page=2"]
        later = poll_channel(loop, "ios")
        # Page 1 now starts with one new review, then reviews stored before: page 2 is not asked for.
        assert (later.pages, later.created, later.duplicates) == (1, 1, 0)
        assert pages_asked(server) == ["page=1", "page=2", "page=1"]
        assert server.requests[0].header("Accept") == "application/json"
    assert stored_ids(loop) == sorted([*ALL_FIVE, "review-11876540001"])
    review = next(item for item in items(loop) if item.external_id == "review-11874301944")
    assert review.text_original == ("Sync broke after update\n\nSince 6.2 my notes on the iPad no longer sync with "
                                    "the iPhone. I have to force quit twice a day.")
    assert review.metadata_json["rating"] == 2 and review.metadata_json["app_version"] == "6.2.0"
    assert review.metadata_json["vote_count"] == 2 and review.metadata_json["country"] == "us"
    assert review.author_pseudonym and "quietreader" not in review.author_pseudonym
    assert review.created_at.isoformat().startswith("2026-12-01T04:47:12")  # -07:00 read as UTC
    assert all("Acme Notes" not in item.text_original for item in items(loop))  # the app's own entry


def test_a_429_mid_round_resumes_at_the_page_it_stopped(loop: FeedbackLoop) -> None:
    with RecordedHttp() as server:
        server.add(page_path(1), recorded("page1.json"))
        server.add(page_path(2), Recorded(429, "", {"Retry-After": "30"}), recorded("page2.json"))
        store_channel(loop, server.base_url)
        report = poll_channel(loop, "ios")
        assert (report.pages, report.created, report.throttled) == (1, 3, 1)
        [status] = poll_statuses(loop)
        assert status.throttled_until is not None and status.consecutive_failures == 0
        resumed = poll_due(loop, now=utcnow() + timedelta(seconds=31))
        assert (resumed.pages, resumed.created) == (1, 2)
        assert pages_asked(server) == ["page=1", "page=2", "page=2"]
    assert stored_ids(loop) == ALL_FIVE


def test_a_feed_with_a_single_review_and_the_page_limit(loop: FeedbackLoop) -> None:
    with RecordedHttp() as server:
        server.add(page_path(1, "gb"), recorded("page1_single_entry.json"))
        store_channel(loop, server.base_url, country="GB")
        assert poll_channel(loop, "ios").created == 1
    assert stored_ids(loop) == ["review-11876540001"]
    assert items(loop)[0].metadata_json["country"] == "gb"


def test_max_pages_bounds_a_round(loop: FeedbackLoop) -> None:
    with RecordedHttp() as server:
        server.add(page_path(1), recorded("page1.json"))
        server.add(page_path(2), recorded("page2.json"))
        store_channel(loop, server.base_url, max_pages="1")
        assert poll_channel(loop, "ios").pages == 1
        assert pages_asked(server) == ["page=1"]


def test_an_answer_that_is_not_the_feed_is_a_recorded_failure(loop: FeedbackLoop) -> None:
    with RecordedHttp() as server:
        server.add(page_path(1), Recorded(200, "<html>Not Found</html>", {"Content-Type": "text/html"}))
        store_channel(loop, server.base_url)
        report = poll_channel(loop, "ios")
    assert report.failed == 1 and "not JSON" in report.errors["ios"]



def test_a_poller_killed_between_pages_fetches_nothing_twice(loop: FeedbackLoop, sqlite_url: str,
                                                             tmp_path: Path) -> None:
    """``feedbackloop channels poll`` in its own process is SIGKILLed while it waits for page 2, i.e. after
    page 1 and its cursor were committed. Started again, the poller asks for page 2 only; every review is
    stored once."""
    release, arrived = threading.Event(), threading.Event()
    with RecordedHttp() as server:
        server.add(page_path(1), recorded("page1.json"))
        server.add(page_path(2), held_until(release, arrived, recorded("page2.json")), recorded("page2.json"))
        store_channel(loop, server.base_url)
        sigkill_poll_while_held("ios", sqlite_url, tmp_path, arrived, release)
        assert stored_ids(loop) == ALL_FIVE[2:]  # page 1's three reviews, committed with their cursor
        [status] = poll_statuses(loop)
        # Claimed as if it would fail: a killed worker's channel waits out the backoff, then carries on.
        assert status.next_poll_at is not None and poll_due(loop).channels == 0
        resumed = poll_due(loop, now=utcnow() + timedelta(hours=7))
        assert (resumed.pages, resumed.created, resumed.duplicates) == (1, 2, 0)
        assert pages_asked(server) == ["page=1", "page=2", "page=2"]
    assert stored_ids(loop) == ALL_FIVE
    with loop.session() as session:
        cursor = session.query(ChannelPollState).one().cursor
    assert json.dumps(cursor) == json.dumps({"mark": ["2026-12-01T04:47:12+00:00", 11874301944]})
