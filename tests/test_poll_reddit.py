"""The ``reddit`` polled channel (plugins/reddit.py) through praw, against a local server answering as Reddit's
documented API does (tests/data/reddit/SOURCE.md): pagination, rate limits, a kill between pages."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import plugins.reddit
from core.clock import utcnow
from core.errors import ConfigurationError, FeedbackloopError, InvalidInput
from core.intake.channels import add_channel
from core.intake.poll_state import ChannelPollState
from core.intake.polling import poll_channel, poll_due
from core.loop import FeedbackLoop
from core.models import Channel, FeedbackItem
from core.outbound import OutboundRefused
from core.settings import Settings
from core.types import PollPage, PollRequest, PollThrottled
from tests.support.loops import make_loop
from tests.support.poll_faults import Killed, held_until, kill_on_fetch, sigkill_poll_while_held
from tests.support.recorded_http import Recorded, RecordedHttp, SeenRequest

DATA = Path(__file__).parent / "data" / "reddit"
SECRET_ENV = "TEST_REDDIT_CLIENT_SECRET"
# What Reddit sends with every API answer (seconds left in its 10-minute window).
RATE_HEADERS = {"X-Ratelimit-Used": "4", "X-Ratelimit-Remaining": "596.0", "X-Ratelimit-Reset": "412"}


def recorded(name: str, headers: dict[str, str] | None = None) -> Recorded:
    return Recorded.json(200, json.loads((DATA / name).read_text()), {**RATE_HEADERS, **(headers or {})})


def listing_query(**params: str) -> dict[str, str]:
    return {"limit": "2", "raw_json": "1", **params}


@pytest.fixture
def reddit() -> Iterator[RecordedHttp]:
    with RecordedHttp() as server:
        server.add("/api/v1/access_token", recorded("token.json"))
        yield server


@pytest.fixture(autouse=True)
def client_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "recorded-client-secret")


def options(server: RecordedHttp, **extra: str) -> dict[str, str]:
    return {"subreddit": "acmeapp", "client_id": "recorded-client-id", "client_secret_env": SECRET_ENV,
            "limit": "2", "oauth_url": server.base_url, "reddit_url": server.base_url, **extra}


def add(loop: FeedbackLoop, server: RecordedHttp, name: str = "reddit-acme", **extra: str) -> None:
    with loop.session() as session:
        add_channel(loop, session, name, "reddit", options=options(server, **extra))


def listing_requests(server: RecordedHttp, path: str = "/r/acmeapp/new") -> list[SeenRequest]:
    return server.requests_to(path)


def stored(loop: FeedbackLoop, channel: str = "reddit-acme") -> dict[str, FeedbackItem]:
    with loop.session() as session:
        items = session.scalars(select(FeedbackItem).where(FeedbackItem.channel == channel)).all()
        session.expunge_all()
        return {item.external_id: item for item in items}


def poll_state(loop: FeedbackLoop, channel: str = "reddit-acme") -> ChannelPollState:
    with loop.session() as session:
        state = session.scalar(select(ChannelPollState).join(Channel, Channel.id == ChannelPollState.channel_id)
                               .where(Channel.name == channel))
        assert state is not None
        session.expunge(state)
        return state


def serve_two_pages(server: RecordedHttp) -> None:
    server.add("/r/acmeapp/new", recorded("new_page1.json"), query=listing_query())
    server.add("/r/acmeapp/new", recorded("new_page2.json"), query=listing_query(before="t3_1h00cc"))
    server.add("/r/acmeapp/new", recorded("empty.json"), query=listing_query(before="t3_1h00dd"))


def test_two_pages_then_a_second_poll_asks_only_for_newer_posts(loop: FeedbackLoop, reddit: RecordedHttp) -> None:
    add(loop, reddit)
    serve_two_pages(reddit)

    first = poll_channel(loop, "reddit-acme")

    assert (first.pages, first.created, first.failed) == (2, 2, 0)
    # The newest page, then the page just newer than its newest post (a full page means more are waiting).
    assert [request.param("before") for request in listing_requests(reddit)] == [None, "t3_1h00cc"]
    items = stored(loop)
    assert sorted(items) == ["t3_1h00cc", "t3_1h00dd"]  # the post deleted by its author is not feedback
    post = items["t3_1h00cc"]
    assert post.text_original.startswith("Export to CSV drops the time zone\n\nEvery export shows times in UTC")
    assert post.url == "https://www.reddit.com/r/acmeapp/comments/1h00cc/export_to_csv_drops_the_time_z/"
    assert {key: post.metadata_json.get(key) for key in ("thread", "opens_thread", "subreddit", "score", "staff")} == {
        "thread": "t3_1h00cc", "opens_thread": True, "subreddit": "acmeapp", "score": 14, "staff": False}
    assert items["t3_1h00dd"].metadata_json["staff"] is True  # distinguished as a moderator
    assert "ledger_lena" not in json.dumps(post.metadata_json) and post.author_pseudonym not in (None, "ledger_lena")
    # Application-only OAuth: the app's id and secret go to the token endpoint, the token to the API.
    token_request = reddit.requests_to("/api/v1/access_token")[0]
    assert token_request.method == "POST" and b"grant_type=client_credentials" in token_request.body
    assert listing_requests(reddit)[0].header("Authorization") == \
        "bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImFwcCJ9.recorded.token"

    second = poll_channel(loop, "reddit-acme")

    assert (second.pages, second.created) == (1, 0)
    assert listing_requests(reddit)[-1].param("before") == "t3_1h00dd"
    assert len(listing_requests(reddit)) == 3


def test_a_429_is_waited_out_as_retry_after_says(loop: FeedbackLoop, reddit: RecordedHttp) -> None:
    add(loop, reddit)
    reddit.add("/r/acmeapp/new", Recorded(429, '{"message": "Too Many Requests", "error": 429}',
                                          {"Retry-After": "120", "Content-Type": "application/json"}),
               recorded("new_page2.json"), query=listing_query())

    throttled = poll_channel(loop, "reddit-acme")

    assert (throttled.throttled, throttled.created) == (1, 0)
    state = poll_state(loop)
    assert state.throttled_until is not None
    wait_s = (state.throttled_until.replace(tzinfo=utcnow().tzinfo) - utcnow()).total_seconds()
    assert 60 < wait_s <= 120
    assert poll_channel(loop, "reddit-acme").pages == 0  # asked again while told to wait: nothing is sent
    assert len(listing_requests(reddit)) == 1

    resumed = poll_due(loop, now=utcnow() + timedelta(seconds=121))

    assert (resumed.pages, resumed.created) == (1, 1)
    assert len(listing_requests(reddit)) == 2


def test_a_spent_rate_limit_is_respected_before_the_next_page(loop: FeedbackLoop, reddit: RecordedHttp) -> None:
    add(loop, reddit)
    spent = {"X-Ratelimit-Used": "600", "X-Ratelimit-Remaining": "0.0", "X-Ratelimit-Reset": "300"}
    reddit.add("/r/acmeapp/new", recorded("new_page1.json", spent), query=listing_query())

    report = poll_channel(loop, "reddit-acme")

    # The full page says more are waiting, but Reddit said no requests are left for 300 s: none is made.
    assert (report.pages, report.created, report.throttled) == (1, 1, 1)
    assert len(listing_requests(reddit)) == 1
    state = poll_state(loop)
    assert state.throttled_until is not None
    wait_s = (state.throttled_until.replace(tzinfo=utcnow().tzinfo) - utcnow()).total_seconds()
    assert 200 < wait_s <= 300





def test_a_poller_sigkilled_between_pages_asks_for_nothing_twice(loop: FeedbackLoop, sqlite_url: str,
                                                                 tmp_path: Path, reddit: RecordedHttp,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``feedbackloop channels poll`` in its own process is SIGKILLed while Reddit holds its request for page 2,
    after page 1 and its cursor were committed (the framework's pattern, tests/test_poll_app_store.py). Polled
    again, it asks only for page 2; every post is stored once."""
    # The poller's process has the default secret allow-list (FEEDBACKLOOP_SECRET_*).
    monkeypatch.setenv("FEEDBACKLOOP_SECRET_TEST_REDDIT", "recorded-client-secret")
    release, arrived = threading.Event(), threading.Event()
    reddit.add("/r/acmeapp/new", recorded("new_page1.json"), query=listing_query())
    reddit.add("/r/acmeapp/new", held_until(release, arrived, recorded("new_page2.json")), recorded("new_page2.json"),
               query=listing_query(before="t3_1h00cc"))
    add(loop, reddit, client_secret_env="FEEDBACKLOOP_SECRET_TEST_REDDIT")
    sigkill_poll_while_held("reddit-acme", sqlite_url, tmp_path, arrived, release)
    assert sorted(stored(loop)) == ["t3_1h00cc"]  # page 1, committed with its cursor

    resumed = poll_channel(loop, "reddit-acme")

    assert (resumed.pages, resumed.created, resumed.duplicates) == (1, 1, 0)
    assert [request.param("before") for request in listing_requests(reddit)] == [None, "t3_1h00cc", "t3_1h00cc"]
    assert sorted(stored(loop)) == ["t3_1h00cc", "t3_1h00dd"]


@pytest.mark.parametrize("after_fetching", [False, True], ids=["before-asking", "after-the-answer"])
def test_a_poller_killed_between_pages_and_restarted_stores_nothing_twice(
        sqlite_url: str, reddit: RecordedHttp, monkeypatch: pytest.MonkeyPatch, after_fetching: bool) -> None:
    real_fetch = plugins.reddit.fetch
    kill_on_fetch(monkeypatch, plugins.reddit, call=2, after_fetching=after_fetching)  # before the loop is made
    killed_loop = make_loop(sqlite_url)
    add(killed_loop, reddit)
    serve_two_pages(reddit)
    with pytest.raises(Killed):
        poll_channel(killed_loop, "reddit-acme")
    killed_loop.close()
    monkeypatch.setattr(plugins.reddit, "fetch", real_fetch)
    asked_before_restart = len(listing_requests(reddit))

    restarted = make_loop(sqlite_url)
    try:
        report = poll_channel(restarted, "reddit-acme")
        assert sorted(stored(restarted)) == ["t3_1h00cc", "t3_1h00dd"]
    finally:
        restarted.close()

    # The committed first page is never asked for again; only the page that was not stored is.
    after_restart = [request.param("before") for request in listing_requests(reddit)[asked_before_restart:]]
    assert after_restart == ["t3_1h00cc"]
    assert [request.param("before") for request in listing_requests(reddit)].count(None) == 1
    assert (report.created, report.duplicates) == (1, 0)


def test_comments_follow_the_posts_in_the_same_round(loop: FeedbackLoop, reddit: RecordedHttp) -> None:
    add(loop, reddit, comments="true")
    reddit.add("/r/acmeapp/new", recorded("new_page2.json"), query=listing_query())
    reddit.add("/r/acmeapp/comments", recorded("comments_page.json"), query=listing_query())
    reddit.add("/r/acmeapp/comments", recorded("empty.json"), query=listing_query(before="t1_m1c002"))

    report = poll_channel(loop, "reddit-acme")

    assert report.pages == 3  # posts (not full), comments (full), comments above the newest (empty)
    items = stored(loop)
    assert sorted(items) == ["t1_m1c002", "t3_1h00dd"]  # the removed comment is not feedback
    comment = items["t1_m1c002"]
    assert comment.text_original == "Same here, and the PDF report has the same problem."
    assert (comment.metadata_json["thread"], comment.metadata_json["opens_thread"]) == ("t3_1h00cc", False)


def test_a_search_inside_a_subreddit(loop: FeedbackLoop, reddit: RecordedHttp) -> None:
    add(loop, reddit, search="calendar sync")
    reddit.add("/r/acmeapp/search", recorded("search_page.json"))

    report = poll_channel(loop, "reddit-acme")

    assert report.created == 1
    request = reddit.requests_to("/r/acmeapp/search")[0]
    assert {key: request.param(key) for key in ("q", "sort", "restrict_sr", "type")} == {
        "q": "calendar sync", "sort": "new", "restrict_sr": "on", "type": "link"}


def fetch_once(server: RecordedHttp, cursor: dict[str, Any], settings: Settings | None = None,
               **extra: str) -> PollPage:
    settings = settings or Settings(outbound_allow_private="127.0.0.1", secret_env_allowed="*")
    return plugins.reddit.fetch(PollRequest("reddit-acme", options(server, **extra), None, cursor, settings))


def test_a_removed_anchor_is_left_behind_after_empty_polls(reddit: RecordedHttp) -> None:
    # Reddit answers nothing before= a post moderators removed; after REANCHOR_AFTER empty answers the
    # newest page is read again, keeping only what is newer than the anchor's time.
    reddit.add("/r/acmeapp/new", recorded("new_page1.json"), query=listing_query())
    anchor = {"anchor": "t3_gone", "utc": 1764500250.0, "empty": plugins.reddit.REANCHOR_AFTER,
              "source": "/r/acmeapp/new"}

    page = fetch_once(reddit, {"posts": anchor})

    assert listing_requests(reddit)[0].param("before") is None
    assert [item.external_id for item in page.items] == ["t3_1h00cc"]  # t3_1h00bb is older than the anchor
    assert page.cursor["posts"]["anchor"] == "t3_1h00cc" and page.more is False


def test_the_outbound_policy_applies_to_the_configured_urls(reddit: RecordedHttp) -> None:
    strict = Settings(outbound_allow_private="", secret_env_allowed="*")

    with pytest.raises(OutboundRefused, match="oauth_url"):
        fetch_once(reddit, {}, settings=strict)
    assert reddit.requests == []


def test_a_redirect_is_not_followed(reddit: RecordedHttp) -> None:
    reddit.add("/api/v1/access_token", Recorded(302, headers={"Location": "http://127.0.0.2:9/collect"}))

    with pytest.raises(FeedbackloopError, match="302"):
        fetch_once(reddit, {})
    assert [request.path for request in reddit.requests] == ["/api/v1/access_token"]


def test_a_429_on_the_token_endpoint_is_a_throttle_too(reddit: RecordedHttp) -> None:
    reddit.add("/api/v1/access_token", Recorded(429, headers={"Retry-After": "30"}))

    with pytest.raises(PollThrottled) as raised:
        fetch_once(reddit, {})
    assert raised.value.retry_after_s == 30


@pytest.mark.parametrize(("bad", "message"), [
    ({"subreddit": ""}, "'subreddit' or 'search'"),
    ({"subreddit": "no spaces here"}, "not a subreddit name"),
    ({"comments": "true", "search": "sync"}, "Reddit's search finds posts only"),
    ({"comments": "sometimes"}, "true or false"),
    ({"limit": "500"}, "between 1 and 100"),
    ({"client_id": ""}, "client_id"),
    ({"oauth_url": "ftp://reddit.example"}, "http"),
])
def test_bad_options_are_refused_when_the_channel_is_added(loop: FeedbackLoop, reddit: RecordedHttp,
                                                          bad: dict[str, str], message: str) -> None:
    with loop.session() as session, pytest.raises(FeedbackloopError, match=message) as raised:
        add_channel(loop, session, "reddit-bad", "reddit", options={**options(reddit), **bad})
    assert raised.value.status_code in (400, 422)


def test_a_mistyped_option_is_refused(loop: FeedbackLoop, reddit: RecordedHttp) -> None:
    with loop.session() as session, pytest.raises(FeedbackloopError, match="subreddits"):
        add_channel(loop, session, "reddit-bad", "reddit", options={**options(reddit), "subreddits": "x"})


def test_a_bad_option_stored_earlier_fails_the_fetch_clearly(reddit: RecordedHttp) -> None:
    with pytest.raises(InvalidInput, match="'subreddit' or 'search'"):
        fetch_once(reddit, {}, subreddit="")


def test_refused_app_credentials_are_the_operators_to_fix(reddit: RecordedHttp) -> None:
    reddit.add("/api/v1/access_token", Recorded.json(401, {"message": "Unauthorized", "error": 401}))

    with pytest.raises(ConfigurationError, match="refused the app's credentials"):
        fetch_once(reddit, {})
    assert reddit.requests_to("/r/acmeapp/new") == []
