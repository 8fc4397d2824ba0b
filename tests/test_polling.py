"""The polling framework (core/intake/polling.py) with a scripted source: pages and cursors committed
together, backoff, Retry-After, the claim that keeps two pollers apart, the worker, the CLI."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core import hookimpl
from core.cli.app import app
from core.clock import aware, utcnow
from core.errors import FeedbackloopError, NotFound
from core.intake.channels import add_channel, remove_channel
from core.intake.poll_state import ChannelPollState
from core.intake.polling import PollPolicy, poll_channel, poll_due, poll_statuses
from core.loop import FeedbackLoop
from core.models import Channel
from core.settings import get_settings
from core.types import ChannelPoller, ChannelType, ItemDraft, PollPage, PollRequest, PollThrottled, reject_webhooks
from core.worker import run_round
from tests.support.intake import items
from tests.support.recorded_http import Recorded, RecordedHttp

runner = CliRunner()


class ScriptedSource:
    """A polled type whose pages are scripted: page ``n`` (from the cursor) is ``pages[n]``, or raises."""

    def __init__(self) -> None:
        self.pages: list[PollPage | Exception] = []
        self.requests: list[PollRequest] = []
        self.before_fetch: Callable[[PollRequest], None] | None = None

    def fetch(self, request: PollRequest) -> PollPage:
        self.requests.append(request)
        if self.before_fetch is not None:
            self.before_fetch(request)
        answer = self.pages[int(request.cursor.get("page", 0))]
        if isinstance(answer, Exception):
            raise answer
        return answer

    @hookimpl
    def register_channel_types(self, register: Callable[[ChannelType], None]) -> None:
        register(ChannelType(name="scripted", description="scripted polled source", handle_webhook=reject_webhooks,
                             poll=ChannelPoller(fetch=self.fetch, interval_s=600.0), options={"topic": "anything"}))


def page(number: int, *texts: str, more: bool = False, deleted: tuple[str, ...] = ()) -> PollPage:
    drafts = [ItemDraft(text=text, external_id=f"p{number}-{index}", author="someone")
              for index, text in enumerate(texts)]
    return PollPage(items=drafts, cursor={"page": number + 1}, more=more, deleted_ids=list(deleted))


def scripted_channel(loop: FeedbackLoop) -> ScriptedSource:
    scripted = ScriptedSource()
    loop.pm.register(scripted, name="scripted-source")
    loop.__dict__.pop("channel_types", None)  # cached: built again with the scripted type
    with loop.session() as session:
        add_channel(loop, session, "scripted", "scripted", options={"topic": "x"})
    return scripted


@pytest.fixture
def source(loop: FeedbackLoop) -> ScriptedSource:
    return scripted_channel(loop)


def state(loop: FeedbackLoop, name: str = "scripted") -> ChannelPollState:
    with loop.session() as session:
        channel = session.query(Channel).filter_by(name=name).one()
        found = session.get(ChannelPollState, channel.id)
        assert found is not None
        return found


def texts(loop: FeedbackLoop) -> list[str]:
    return [item.text_original for item in items(loop)]


def test_pages_are_followed_and_each_commits_its_cursor(loop: FeedbackLoop, source: ScriptedSource) -> None:
    source.pages = [page(0, "export is slow", more=True), page(1, "dark mode please", more=True),
                    page(2, "search is broken"), page(3, "never asked for")]
    before = utcnow()
    report = poll_channel(loop, "scripted")
    assert (report.pages, report.created, report.failed) == (3, 3, 0)
    assert [request.cursor for request in source.requests] == [{}, {"page": 1}, {"page": 2}]
    assert texts(loop) == ["export is slow", "dark mode please", "search is broken"]
    stored = state(loop)
    assert stored.cursor == {"page": 3} and stored.items_total == 3 and stored.consecutive_failures == 0
    # Paced by the type's interval (600 s) from the end of the round.
    assert aware(stored.next_poll_at) >= before + timedelta(seconds=600)
    assert all(item.channel == "scripted" for item in items(loop))


def test_a_crash_between_fetch_and_commit_refetches_only_that_page(loop: FeedbackLoop, source: ScriptedSource) -> None:
    source.pages = [page(0, "first page", more=True), RuntimeError("connection reset"), page(2, "third")]
    report = poll_channel(loop, "scripted")
    assert (report.pages, report.failed) == (1, 1) and "connection reset" in report.errors["scripted"]
    stored = state(loop)
    assert stored.cursor == {"page": 1} and stored.consecutive_failures == 1
    assert "RuntimeError: connection reset" in (stored.last_error or "")
    source.pages[1] = page(1, "second page", more=True)
    source.requests.clear()
    poll_channel(loop, "scripted")
    assert [request.cursor for request in source.requests] == [{"page": 1}, {"page": 2}]
    assert texts(loop) == ["first page", "second page", "third"]
    assert state(loop).consecutive_failures == 0 and state(loop).last_error is None


def test_a_page_refetched_after_a_lost_commit_stores_nothing_twice(loop: FeedbackLoop, source: ScriptedSource) -> None:
    """The page was fetched and its items stored, but the cursor went back (a restore, a lost write): ingest's
    de-duplication keeps one copy of each item."""
    source.pages = [page(0, "only once")]
    poll_channel(loop, "scripted")
    with loop.session() as session:
        found = session.get(ChannelPollState, state(loop).channel_id)
        assert found is not None
        found.cursor = {}
    report = poll_channel(loop, "scripted")
    assert (report.created, report.duplicates) == (0, 1) and texts(loop) == ["only once"]


def test_claims_pages_failures_and_throttling_on_each_database(any_loop: FeedbackLoop) -> None:
    """The claim (compare-and-set on a timestamp), the page commits and the state updates on SQLite and
    PostgreSQL alike."""
    source = scripted_channel(any_loop)
    source.pages = [page(0, "one", more=True), RuntimeError("down"), PollThrottled("429", retry_after_s=60)]
    nested: list[int] = []
    source.before_fetch = lambda request: nested.append(poll_due(any_loop).channels) if not nested else None
    assert poll_due(any_loop).pages == 1 and nested == [0]
    assert state(any_loop).consecutive_failures == 1 and state(any_loop).cursor == {"page": 1}
    source.pages[1] = page(1, "two", more=True)
    report = poll_due(any_loop, now=utcnow() + timedelta(hours=1))
    assert (report.pages, report.throttled) == (1, 1)
    assert texts(any_loop) == ["one", "two"] and state(any_loop).cursor == {"page": 2}
    assert state(any_loop).throttled_until is not None and state(any_loop).consecutive_failures == 1


def test_failures_back_off_exponentially_with_jitter(loop: FeedbackLoop, source: ScriptedSource) -> None:
    source.pages = [RuntimeError("down")]
    policy = PollPolicy(backoff_base_s=60, backoff_cap_s=3600)
    delays = []
    for _ in range(4):
        before = utcnow()
        poll_channel(loop, "scripted", policy, rng=random.Random(7))
        delays.append((aware(state(loop).next_poll_at) - before).total_seconds())  # type: ignore[operator]
    assert state(loop).consecutive_failures == 4
    # Failure n waits 60 * 2^(n-1) s times a jitter in [0.5, 1].
    for failures, delay in enumerate(delays, 1):
        ceiling = 60 * 2 ** (failures - 1)
        assert ceiling * 0.5 - 1 <= delay <= ceiling + 1


def test_retry_after_is_waited_exactly_and_capped(loop: FeedbackLoop, source: ScriptedSource) -> None:
    source.pages = [PollThrottled("HTTP 429 from the source", retry_after_s=120)]
    before = utcnow()
    report = poll_channel(loop, "scripted")
    after = utcnow()
    assert report.throttled == 1 and report.failed == 0
    stored = state(loop)
    assert before + timedelta(seconds=120) <= aware(stored.throttled_until) <= after + timedelta(seconds=120)
    assert stored.next_poll_at == stored.throttled_until and stored.consecutive_failures == 0
    assert "throttled" in (stored.last_error or "")
    # Neither the worker nor a manual poll asks again before then.
    source.requests.clear()
    assert poll_due(loop).channels == 0
    assert "wait" in poll_channel(loop, "scripted").errors["scripted"]
    assert source.requests == []
    # After the wait, the worker polls it again.
    source.pages = [page(0, "back again")]
    assert poll_due(loop, now=after + timedelta(seconds=121)).created == 1
    # A source asking for a week is asked again after the cap.
    source.pages.append(PollThrottled("slow down", retry_after_s=7 * 24 * 3600))
    before = utcnow()
    poll_channel(loop, "scripted", PollPolicy(max_retry_after_s=3600))
    assert aware(state(loop).throttled_until) <= utcnow() + timedelta(seconds=3600)
    assert aware(state(loop).throttled_until) >= before + timedelta(seconds=3600)


def test_the_cap_per_round_leaves_the_channel_due_at_once(loop: FeedbackLoop, source: ScriptedSource) -> None:
    source.pages = [page(number, f"item {number}", more=True) for number in range(5)] + [page(5, "last")]
    report = poll_channel(loop, "scripted", PollPolicy(max_pages_per_round=2))
    assert report.pages == 2
    assert aware(state(loop).next_poll_at) <= utcnow()
    assert poll_due(loop, PollPolicy(max_pages_per_round=10)).pages == 4
    assert len(texts(loop)) == 6


def test_poll_due_skips_channels_not_due(loop: FeedbackLoop, source: ScriptedSource) -> None:
    source.pages = [page(0, "first"), page(1, "second")]
    assert poll_due(loop).created == 1
    assert poll_due(loop).channels == 0  # next one in 600 s
    assert poll_due(loop, now=utcnow() + timedelta(seconds=601)).created == 1


def test_a_second_poller_cannot_claim_a_channel_in_a_round(loop: FeedbackLoop, source: ScriptedSource) -> None:
    """While one round is fetching, the worker's next round (or another worker) finds the channel claimed."""
    nested: list[int] = []

    def meanwhile(request: PollRequest) -> None:
        if not nested:
            nested.append(poll_due(loop).channels)

    source.before_fetch = meanwhile
    source.pages = [page(0, "claimed")]
    poll_due(loop)
    assert nested == [0] and len(source.requests) == 1


def test_a_page_fetched_over_a_cursor_that_moved_is_not_committed(loop: FeedbackLoop,
                                                                   source: ScriptedSource) -> None:
    """A manual poll racing the worker: the later commit would move the cursor back; it is dropped instead."""
    source.pages = [page(0, "from the manual poll"), page(1, "next")]

    def meanwhile(request: PollRequest) -> None:
        if len(source.requests) == 1:
            with loop.session() as session:
                found = session.get(ChannelPollState, state(loop).channel_id)
                assert found is not None
                found.cursor = {"page": 1, "by": "the other poller"}

    source.before_fetch = meanwhile
    report = poll_channel(loop, "scripted")
    assert report.pages == 0 and texts(loop) == []
    assert state(loop).cursor == {"page": 1, "by": "the other poller"}


def test_deleted_ids_remove_items(loop: FeedbackLoop, source: ScriptedSource) -> None:
    source.pages = [page(0, "to be deleted", "kept", more=False)]
    poll_channel(loop, "scripted")
    source.pages.append(page(1, deleted=("p0-0",)))
    report = poll_channel(loop, "scripted")
    assert report.deleted == 1 and texts(loop) == ["kept"]


def test_items_without_text_are_skipped_not_fatal(loop: FeedbackLoop, source: ScriptedSource) -> None:
    drafts = [ItemDraft(text="  ", external_id="blank"), ItemDraft(text="fine", external_id="ok")]
    source.pages = [PollPage(items=drafts, cursor={"page": 1})]
    report = poll_channel(loop, "scripted")
    assert (report.created, report.skipped, report.failed) == (1, 1, 0)


def test_options_reach_fetch_and_the_internal_flag_marks_items(loop: FeedbackLoop, source: ScriptedSource) -> None:
    with loop.session() as session:
        add_channel(loop, session, "staff-feed", "scripted", options={"topic": "t", "internal": "true"})
    source.pages = [page(0, "said by a colleague")]
    poll_channel(loop, "staff-feed")
    assert source.requests[0].options["topic"] == "t" and source.requests[0].settings is loop.settings
    assert items(loop)[0].metadata_json.get("internal") is True


def test_the_worker_round_polls_due_channels(loop: FeedbackLoop, source: ScriptedSource) -> None:
    source.pages = [page(0, "found by the worker")]
    run_round(loop)
    assert texts(loop) == ["found by the worker"]
    statuses = poll_statuses(loop)
    assert [(status.name, status.items_total) for status in statuses] == [("scripted", 1)]


def test_removing_a_channel_removes_its_state(loop: FeedbackLoop, source: ScriptedSource) -> None:
    source.pages = [page(0, "x")]
    poll_channel(loop, "scripted")
    with loop.session() as session:
        remove_channel(session, "scripted")
    with loop.session() as session:
        assert session.query(ChannelPollState).count() == 0


def test_polling_a_webhook_channel_or_an_unknown_one_is_a_clear_error(loop: FeedbackLoop) -> None:
    with loop.session() as session:
        add_channel(loop, session, "hooks", "webhook")
    with pytest.raises(FeedbackloopError, match="not polled"):
        poll_channel(loop, "hooks")
    with pytest.raises(NotFound):
        poll_channel(loop, "ghost")


@pytest.fixture
def cli_private(cli_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CLI, allowed to call the local recorded server (as make_loop's loops are)."""
    monkeypatch.setenv("FEEDBACKLOOP_OUTBOUND_ALLOW_PRIVATE", "127.0.0.1")
    get_settings.cache_clear()
    return cli_env


@pytest.mark.parametrize(("args", "message"), [
    (["channels", "add", "news", "--plugin", "feed"], "needs the option url"),
    (["channels", "add", "news", "--plugin", "feed", "--option", "url=ftp://example.com/feed"], "http"),
    (["channels", "add", "news", "--plugin", "feed", "--option", "url=https://example.com/feed",
      "--option", "interval_s=1"], "interval_s"),
    (["channels", "add", "news", "--plugin", "feed", "--option", "url=https://example.com/feed",
      "--option", "interval_s=soon"], "interval_s"),
    (["channels", "add", "ios", "--plugin", "app_store"], "app_id"),
    (["channels", "add", "ios", "--plugin", "app_store", "--option", "app_id=123", "--option", "max_pages=11"],
     "max_pages"),
    (["channels", "poll", "ghost"], "ghost"),
])
def test_bad_polled_channel_options_exit_2(cli_env: str, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_cli_poll_now_and_status(cli_private: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # Rich's table width: the error column unabridged
    atom = (Path(__file__).parent / "data" / "feeds" / "atom.xml").read_bytes()
    with RecordedHttp() as server:
        server.add("/feed.xml", Recorded(200, atom, {"Content-Type": "application/atom+xml"}))
        server.add("/broken.xml", Recorded(500, "oops"))
        for name, path in (("news", "/feed.xml"), ("broken", "/broken.xml")):
            added = runner.invoke(app, ["channels", "add", name, "--plugin", "feed", "--option",
                                        f"url={server.url(path)}"])
            assert added.exit_code == 0, added.output
        polled = runner.invoke(app, ["channels", "poll", "news"])
        assert polled.exit_code == 0, polled.output
        assert "2 new" in polled.output
        failed = runner.invoke(app, ["channels", "poll", "broken"])
        assert failed.exit_code == 1 and "HTTP 500" in failed.output
    status = runner.invoke(app, ["channels", "poll-status"])
    assert status.exit_code == 0, status.output
    lines = {line.split()[1]: line for line in status.output.splitlines() if line.startswith("│ ")}
    assert "HTTP 500" in lines["broken"] and " 2 " in lines["news"]
