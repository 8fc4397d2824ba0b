"""The ``mastodon`` polled channel (plugins/mastodon.py) through Mastodon.py, against a local server answering as
Mastodon's documented API does (tests/data/mastodon/SOURCE.md): Link pagination, rate limits, a kill between pages."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import plugins.mastodon
from core.clock import utcnow
from core.errors import ConfigurationError, FeedbackloopError
from core.intake.channels import add_channel
from core.intake.poll_state import ChannelPollState
from core.intake.polling import poll_channel, poll_due
from core.loop import FeedbackLoop
from core.models import Channel, FeedbackItem
from core.outbound import OutboundRefused
from core.settings import Settings
from core.types import PollPage, PollRequest
from plugins.mastodon import text_of_content
from tests.support.loops import make_loop
from tests.support.poll_faults import Killed, held_until, kill_on_fetch, sigkill_poll_while_held
from tests.support.recorded_http import Recorded, RecordedHttp, SeenRequest

DATA = Path(__file__).parent / "data" / "mastodon"
TAG_PATH = "/api/v1/timelines/tag/acmeapp"
TOKEN_ENV = "TEST_MASTODON_TOKEN"
RATE_HEADERS = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "297",
                "X-RateLimit-Reset": "2099-01-01T00:05:00.000Z"}


def recorded(name: str, headers: dict[str, str] | None = None) -> Recorded:
    return Recorded.json(200, json.loads((DATA / name).read_text()), {**RATE_HEADERS, **(headers or {})})


def link(server: RecordedHttp, path: str, older: str, newer: str) -> dict[str, str]:
    """The Link header Mastodon sends with a page: rel=next (older posts), rel=prev (newer ones)."""
    return {"Link": f'<{server.url(path, limit="2", max_id=older)}>; rel="next", '
                    f'<{server.url(path, limit="2", min_id=newer)}>; rel="prev"'}


@pytest.fixture
def mastodon() -> Iterator[RecordedHttp]:
    with RecordedHttp() as server:
        yield server


@pytest.fixture(autouse=True)
def access_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "recorded-access-token")


def options(server: RecordedHttp, **extra: str) -> dict[str, str]:
    chosen = {"api_base_url": server.base_url, "limit": "2", **extra}
    if "mentions" not in extra:
        chosen.setdefault("hashtag", "acmeapp")
    return chosen


def add(loop: FeedbackLoop, server: RecordedHttp, name: str = "toots", **extra: str) -> None:
    with loop.session() as session:
        add_channel(loop, session, name, "mastodon", options=options(server, **extra))


def stored(loop: FeedbackLoop, channel: str = "toots") -> dict[str, FeedbackItem]:
    with loop.session() as session:
        items = session.scalars(select(FeedbackItem).where(FeedbackItem.channel == channel)).all()
        session.expunge_all()
        return {item.external_id: item for item in items}


def throttled_for_s(loop: FeedbackLoop, channel: str = "toots") -> float:
    with loop.session() as session:
        until = session.scalar(select(ChannelPollState.throttled_until).join(
            Channel, Channel.id == ChannelPollState.channel_id).where(Channel.name == channel))
    assert until is not None
    return (until.replace(tzinfo=UTC) - utcnow()).total_seconds()


def tag_requests(server: RecordedHttp) -> list[SeenRequest]:
    return server.requests_to(TAG_PATH)


def serve_two_pages(server: RecordedHttp) -> None:
    server.add(TAG_PATH, recorded("tag_page1.json", link(server, TAG_PATH, "113500000000000150",
                                                         "113500000000000200")), query={"limit": "2"})
    server.add(TAG_PATH, recorded("tag_page2.json", link(server, TAG_PATH, "113500000000000300",
                                                         "113500000000000300")),
               query={"limit": "2", "min_id": "113500000000000200"})
    server.add(TAG_PATH, recorded("empty.json"), query={"limit": "2", "min_id": "113500000000000300"})


def test_two_pages_by_the_link_header_then_only_newer_posts(loop: FeedbackLoop, mastodon: RecordedHttp) -> None:
    add(loop, mastodon)
    serve_two_pages(mastodon)

    first = poll_channel(loop, "toots")

    assert (first.pages, first.created, first.failed) == (2, 2, 0)
    assert [request.param("min_id") for request in tag_requests(mastodon)] == [None, "113500000000000200"]
    items = stored(loop)
    assert sorted(items) == ["113500000000000200", "113500000000000300"]  # the boost is not feedback
    reply = items["113500000000000200"]
    # Mention links name other people and are left out; hashtags and link text stay; entities are decoded.
    assert reply.text_original == ("the CSV export drops the time zone & our finance team misreads it. "
                                   "#acmeapp\nSee example.com/export-bug")
    assert {key: reply.metadata_json.get(key) for key in ("thread", "opens_thread", "language", "tags")} == {
        "thread": "113500000000000050", "opens_thread": False, "language": "en", "tags": ["acmeapp"]}
    assert reply.author_pseudonym not in (None, "lena@fosstodon.example")
    assert "lena" not in json.dumps(reply.metadata_json)
    warned = items["113500000000000300"]
    assert warned.text_original.startswith("eye strain\n\nDark mode please")  # the content warning first
    assert warned.metadata_json["opens_thread"] is True
    assert warned.metadata_json["thread"] == "113500000000000300"

    second = poll_channel(loop, "toots")

    assert (second.pages, second.created) == (1, 0)
    assert [request.param("min_id") for request in tag_requests(mastodon)][-1] == "113500000000000300"
    assert len(tag_requests(mastodon)) == 3
    assert [request.path for request in mastodon.requests] == [TAG_PATH] * 3  # no instance look-up per poll


def test_a_429_is_waited_out_as_retry_after_says(loop: FeedbackLoop, mastodon: RecordedHttp) -> None:
    add(loop, mastodon)
    mastodon.add(TAG_PATH, Recorded.json(429, {"error": "Too many requests"},
                                         {"Retry-After": "90", "X-RateLimit-Remaining": "0",
                                          "X-RateLimit-Reset": "2099-01-01T00:00:00.000Z"}),
                 recorded("tag_page2.json"), query={"limit": "2"})

    throttled = poll_channel(loop, "toots")

    assert (throttled.throttled, throttled.created) == (1, 0)
    assert 30 < throttled_for_s(loop) <= 90  # Retry-After, not the far-away reset time
    assert poll_channel(loop, "toots").pages == 0
    assert len(tag_requests(mastodon)) == 1  # Mastodon.py neither slept nor retried, and we did not ask again

    resumed = poll_due(loop, now=utcnow() + timedelta(seconds=91))

    assert (resumed.pages, resumed.created) == (1, 1)


def test_a_spent_rate_limit_is_respected_before_the_next_page(loop: FeedbackLoop, mastodon: RecordedHttp) -> None:
    add(loop, mastodon)
    reset = (utcnow() + timedelta(seconds=240)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    spent = {**link(mastodon, TAG_PATH, "113500000000000150", "113500000000000200"),
             "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
    mastodon.add(TAG_PATH, recorded("tag_page1.json", spent), query={"limit": "2"})

    report = poll_channel(loop, "toots")

    assert (report.pages, report.created, report.throttled) == (1, 1, 1)
    assert len(tag_requests(mastodon)) == 1
    assert 120 < throttled_for_s(loop) <= 240





def test_a_poller_sigkilled_between_pages_asks_for_nothing_twice(loop: FeedbackLoop, sqlite_url: str,
                                                                 tmp_path: Path, mastodon: RecordedHttp) -> None:
    """``feedbackloop channels poll`` in its own process is SIGKILLed while the server holds its request for
    page 2, after page 1 and its cursor were committed (the framework's pattern, tests/test_poll_app_store.py).
    Polled again, it asks only for page 2; every post is stored once."""
    release, arrived = threading.Event(), threading.Event()
    page2 = recorded("tag_page2.json", link(mastodon, TAG_PATH, "113500000000000300", "113500000000000300"))
    mastodon.add(TAG_PATH, recorded("tag_page1.json", link(mastodon, TAG_PATH, "113500000000000150",
                                                           "113500000000000200")), query={"limit": "2"})
    mastodon.add(TAG_PATH, held_until(release, arrived, page2), page2,
                 query={"limit": "2", "min_id": "113500000000000200"})
    add(loop, mastodon)
    sigkill_poll_while_held("toots", sqlite_url, tmp_path, arrived, release)
    assert sorted(stored(loop)) == ["113500000000000200"]  # page 1, committed with its cursor

    resumed = poll_channel(loop, "toots")

    assert (resumed.pages, resumed.created, resumed.duplicates) == (1, 1, 0)
    assert [request.param("min_id") for request in tag_requests(mastodon)] == [
        None, "113500000000000200", "113500000000000200"]
    assert sorted(stored(loop)) == ["113500000000000200", "113500000000000300"]


@pytest.mark.parametrize("after_fetching", [False, True], ids=["before-asking", "after-the-answer"])
def test_a_poller_killed_between_pages_and_restarted_stores_nothing_twice(
        sqlite_url: str, mastodon: RecordedHttp, monkeypatch: pytest.MonkeyPatch, after_fetching: bool) -> None:
    real_fetch = plugins.mastodon.fetch
    kill_on_fetch(monkeypatch, plugins.mastodon, call=2, after_fetching=after_fetching)  # before the loop is made
    killed_loop = make_loop(sqlite_url)
    add(killed_loop, mastodon)
    serve_two_pages(mastodon)
    with pytest.raises(Killed):
        poll_channel(killed_loop, "toots")
    killed_loop.close()
    monkeypatch.setattr(plugins.mastodon, "fetch", real_fetch)
    asked_before_restart = len(tag_requests(mastodon))

    restarted = make_loop(sqlite_url)
    try:
        report = poll_channel(restarted, "toots")
        assert sorted(stored(restarted)) == ["113500000000000200", "113500000000000300"]
    finally:
        restarted.close()

    after_restart = [request.param("min_id") for request in tag_requests(mastodon)[asked_before_restart:]]
    assert after_restart == ["113500000000000200"]  # the committed first page is not asked for again
    assert [request.param("min_id") for request in tag_requests(mastodon)].count(None) == 1
    assert (report.created, report.duplicates) == (1, 0)


def test_mentions_read_the_accounts_notifications_with_its_token(loop: FeedbackLoop, mastodon: RecordedHttp) -> None:
    add(loop, mastodon, mentions="true", access_token_env=TOKEN_ENV, limit="40")
    mastodon.add("/api/v1/notifications", recorded("notifications_mentions.json"))

    report = poll_channel(loop, "toots")

    assert report.created == 1
    request = mastodon.requests_to("/api/v1/notifications")[0]
    assert request.query["types[]"] == ["mention"]
    assert request.header("Authorization") == "Bearer recorded-access-token"
    items = stored(loop)
    assert sorted(items) == ["113500000000000500"]  # the direct message is left out by default
    assert items["113500000000000500"].text_original == "does the calendar sync work with Outlook?"
    assert items["113500000000000500"].created_at.replace(tzinfo=UTC) == datetime(2025, 11, 30, 12, 0, tzinfo=UTC)
    with loop.session() as session:
        cursor = session.scalar(select(ChannelPollState.cursor))
    assert cursor is not None and cursor["min_id"] == "38020"  # notification ids, the newest seen


def fetch_once(server: RecordedHttp, cursor: dict[str, Any], settings: Settings | None = None,
               secret: str | None = None, **extra: str) -> PollPage:
    settings = settings or Settings(outbound_allow_private="127.0.0.1", secret_env_allowed="*")
    return plugins.mastodon.fetch(PollRequest("toots", options(server, **extra), secret, cursor, settings))


def test_direct_messages_only_when_asked_for(mastodon: RecordedHttp) -> None:
    mastodon.add("/api/v1/notifications", recorded("notifications_mentions.json"))

    page = fetch_once(mastodon, {}, secret="token", mentions="true", include_direct="true")

    assert sorted(item.external_id for item in page.items) == ["113500000000000500", "113500000000000510"]


def test_bots_are_not_customers(mastodon: RecordedHttp) -> None:
    mastodon.add(TAG_PATH, recorded("tag_bot.json"))

    page = fetch_once(mastodon, {})

    assert page.items == [] and page.cursor["min_id"] == "113500000000000400"


def test_a_changed_hashtag_starts_afresh(mastodon: RecordedHttp) -> None:
    mastodon.add("/api/v1/timelines/tag/otherapp", recorded("empty.json"))
    old_cursor = {"source": f"{mastodon.base_url} #acmeapp", "min_id": "113500000000000300"}

    fetch_once(mastodon, old_cursor, hashtag="otherapp")

    assert mastodon.requests[0].param("min_id") is None


def test_mentions_need_a_token(mastodon: RecordedHttp) -> None:
    with pytest.raises(ConfigurationError, match="access_token_env"):
        fetch_once(mastodon, {}, mentions="true")
    assert mastodon.requests == []


def test_the_outbound_policy_applies_to_api_base_url(mastodon: RecordedHttp) -> None:
    strict = Settings(outbound_allow_private="", secret_env_allowed="*")

    with pytest.raises(OutboundRefused, match="api_base_url"):
        fetch_once(mastodon, {}, settings=strict)
    assert mastodon.requests == []


def test_an_unauthorised_token_is_a_configuration_error(mastodon: RecordedHttp) -> None:
    mastodon.add("/api/v1/notifications", Recorded.json(401, {"error": "The access token is invalid"}))

    with pytest.raises(ConfigurationError, match="refused the access token"):
        fetch_once(mastodon, {}, secret="stale", mentions="true")


def test_text_of_content_keeps_what_the_author_wrote() -> None:
    html = ('<p>Hi <span class="h-card"><a href="https://x.example/@bob" class="u-url mention">@<span>bob</span>'
            '</a></span>,<br>two&nbsp;lines &lt;here&gt;</p><p>and <a href="https://x.example/tags/a" '
            'class="mention hashtag" rel="tag">#<span>a</span></a> paragraph</p>')

    assert text_of_content(html) == "Hi ,\ntwo lines <here>\nand #a paragraph"


@pytest.mark.parametrize(("bad", "message"), [
    ({"api_base_url": ""}, "api_base_url"),
    ({"api_base_url": "mastodon.example"}, "http"),
    ({"hashtag": ""}, "exactly one of"),
    ({"mentions": "true"}, "exactly one of"),
    ({"hashtag": "two words"}, "not a hashtag"),
    ({"limit": "80"}, "between 1 and 40"),
    ({"include_direct": "maybe"}, "true or false"),
])
def test_bad_options_are_refused_when_the_channel_is_added(loop: FeedbackLoop, mastodon: RecordedHttp,
                                                          bad: dict[str, str], message: str) -> None:
    with loop.session() as session, pytest.raises(FeedbackloopError, match=message) as raised:
        add_channel(loop, session, "toots-bad", "mastodon", options={**options(mastodon), **bad})
    assert raised.value.status_code in (400, 422)
