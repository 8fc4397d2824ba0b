"""Issue 14, faults 2, 4 and 7 at the intake: what a re-sent item may change, replays, and heavy deliveries.

Fault 2: a re-sent item overwrote its stored metadata (the forum instance that later chose where the
reply with the API key went). Fault 7: a signed body re-sent after an edit brought the old text back.
Fault 4: a delivery's parsing, enrichment and storage ran on the event loop and per deleted item.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from core import hookimpl
from core.intake import ingest as ingest_module
from core.intake.channels import MAX_DELIVERY_ITEMS, add_channel
from core.intake.group_commit import WebhookIntake
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import FeedbackItem, ItemSighting, ItemTombstone, Theme
from core.types import ChannelType, IntakeResult, ItemDraft, WebhookRejected, WebhookRequest
from plugins import discourse, github
from plugins.kind import KIND_PREFIX_CHARS, classify
from plugins.sentiment import SENTIMENT_PREFIX_CHARS, sentiment_of
from plugins.webhook_signing import sign, sign_timestamped, verify_timestamped
from tests.support.intake import count_items, items, webhook_headers

SECRET = "trust-secret-0123456789"
SECRET_ENV = "FEEDBACKLOOP_SECRET_TRUST"
HEADER = "X-Feedbackloop-Signature"
FORUM_URL = "https://forum.example/t/invoices/7"
FORUM = {"discourse_instance": "https://forum.example", "topic_id": 7, "post_number": 1, "tags": ["billing"]}


@pytest.fixture
def hook(loop: FeedbackLoop, monkeypatch: pytest.MonkeyPatch) -> FeedbackLoop:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with loop.session() as session:
        add_channel(loop, session, "hook", "webhook", secret_env=SECRET_ENV,
                    options={"metadata_fields": "tier"})
    return loop


def deliver(client: TestClient, records: object, delivery: str | None = None, **sign_args: int) -> dict[str, object]:
    body = json.dumps(records).encode()
    response = client.post("/webhooks/hook", content=body, headers=webhook_headers(SECRET, body, delivery, **sign_args))
    assert response.status_code == 202, response.text
    answer: dict[str, object] = response.json()
    return answer


def store(loop: FeedbackLoop, *drafts: ItemDraft) -> ingest_module.IngestReport:
    with loop.session() as session:
        return ingest(loop, session, list(drafts))


def stored(loop: FeedbackLoop, external_id: str) -> FeedbackItem:
    with loop.session() as session:
        item = session.scalar(select(FeedbackItem).where(FeedbackItem.external_id == external_id))
        assert item is not None
        return item


def forum_draft(text: str = "Invoices are late", editable: frozenset[str] = frozenset(),
                **metadata: object) -> ItemDraft:
    return ItemDraft(text=text, channel="forum", external_id="topic-7", author="ana", url=FORUM_URL,
                     metadata={**FORUM, **metadata}, editable_metadata=editable)


# Fault 2: what an update may change.

def test_resend_keeps_identifying_metadata_and_adds_only_new_keys(loop: FeedbackLoop) -> None:
    store(loop, forum_draft(editable=discourse.EDITABLE_METADATA))
    # What POST /api/v1/feedback builds: the same channel and id, no editable keys of its own.
    report = store(loop, ItemDraft(text="Invoices are late", channel="forum", external_id="topic-7",
                                   url="https://evil.example/t/1",
                                   metadata={"discourse_instance": "https://evil.example", "topic_id": 99,
                                             "tags": ["hijacked"], "note": "new key"}))
    assert report.duplicates == 1
    item = stored(loop, "topic-7")
    assert item.metadata_json == {**FORUM, "note": "new key"}
    assert item.url == FORUM_URL  # a url, like an id, is kept as first stored


def test_source_edit_changes_only_the_keys_its_plugin_declares(loop: FeedbackLoop) -> None:
    store(loop, forum_draft(editable=discourse.EDITABLE_METADATA))
    edit = forum_draft("Invoices are late again", discourse.EDITABLE_METADATA, tags=["billing", "urgent"],
                       discourse_instance="https://elsewhere.example", topic_id=8)
    assert store(loop, edit).updated == 1
    item = stored(loop, "topic-7")
    assert item.text_original == "Invoices are late again"
    assert item.metadata_json == {**FORUM, "tags": ["billing", "urgent"]}
    assert "discourse_instance" not in discourse.EDITABLE_METADATA and "repository" not in github.EDITABLE_METADATA


def test_identical_resend_writes_nothing(loop: FeedbackLoop) -> None:
    draft = forum_draft(editable=discourse.EDITABLE_METADATA)
    draft.updated_at, draft.customer_tier = datetime(2026, 5, 1, tzinfo=UTC), "gold"
    store(loop, draft)
    before = stored(loop, "topic-7")
    writes: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().split(" ", 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            writes.append(statement)

    event.listen(loop.engine, "before_cursor_execute", count)
    try:
        again = forum_draft(editable=discourse.EDITABLE_METADATA)
        again.updated_at, again.customer_tier = datetime(2026, 5, 1, tzinfo=UTC), "gold"
        assert store(loop, again).duplicates == 1
    finally:
        event.remove(loop.engine, "before_cursor_execute", count)
    assert writes == []
    assert stored(loop, "topic-7").updated_at == before.updated_at


# Fault 7: timestamped signatures and stale edits.

def test_timestamped_signature_is_checked_against_the_clock() -> None:
    body, now = b'{"text": "hi"}', 1_800_000_000

    def check(value: str, **options: object) -> None:
        verify_timestamped(SECRET, body, {HEADER.lower(): value}, HEADER, options, now=now)

    check(sign_timestamped(SECRET, body, now - 299))
    check(sign_timestamped(SECRET, body, now + 299))
    check(f"t={now},v1={'0' * 64},v1={sign_timestamped(SECRET, body, now).split('v1=')[1]}")  # rotation
    check(sign_timestamped(SECRET, body, now - 900), signature_tolerance_s=1000)
    check(sign(SECRET, body), allow_legacy_signatures=True)
    refused = {
        "stale": sign_timestamped(SECRET, body, now - 301),
        "future": sign_timestamped(SECRET, body, now + 301),
        "wrong secret": sign_timestamped("another-secret", body, now),
        "other body": sign_timestamped(SECRET, b'{"text": "bye"}', now),
        "legacy": sign(SECRET, body),
        "no t": "v1=" + sign_timestamped(SECRET, body, now).split("v1=")[1],
        "no v1": f"t={now}",
        "resigned t": sign_timestamped(SECRET, body, now - 400).replace(f"t={now - 400}", f"t={now}"),
    }
    for name, value in refused.items():
        with pytest.raises(WebhookRejected) as caught:
            check(value)
        assert caught.value.status_code == 401, name
    with pytest.raises(WebhookRejected) as misconfigured:
        check(sign_timestamped(SECRET, body, now), signature_tolerance_s="soon")
    assert misconfigured.value.status_code == 503


def test_replayed_body_with_new_delivery_id_is_refused_or_ignored(client: TestClient, hook: FeedbackLoop) -> None:
    old = {"id": "e-1", "text": "Export is broken", "updated_at": "2026-05-01T10:00:00Z", "tier": "free"}
    new = {"id": "e-1", "text": "Export works now, thanks", "updated_at": "2026-05-01T11:00:00+00:00",
           "tier": "gold"}
    assert deliver(client, old, "d-1")["created"] == 1
    assert deliver(client, new, "d-2")["updated"] == 1
    # The captured first delivery, as it was signed then: outside the tolerance, refused.
    body = json.dumps(old).encode()
    stale = webhook_headers(SECRET, body, "d-3", timestamp=int(datetime.now(UTC).timestamp()) - 3600)
    assert client.post("/webhooks/hook", content=body, headers=stale).status_code == 401
    # Signed afresh (a sender's retry, or a leaked secret): older than the stored edit, so ignored.
    assert deliver(client, old, "d-4")["duplicates"] == 1
    item = stored(hook, "e-1")
    assert item.text_original == "Export works now, thanks" and item.metadata_json == {"tier": "gold"}
    assert item.source_updated_at is not None
    assert item.source_updated_at.replace(tzinfo=UTC) == datetime(2026, 5, 1, 11, tzinfo=UTC)
    legacy = client.post("/webhooks/hook", content=body, headers={HEADER: sign(SECRET, body)})
    assert legacy.status_code == 401 and "legacy" in legacy.json()["detail"]


def test_older_edit_is_ignored_for_every_channel(loop: FeedbackLoop) -> None:
    noon = datetime(2026, 5, 1, 12, tzinfo=UTC)
    for channel in ("forum", "gh", "api"):
        first = ItemDraft(text="Sync loses my notes", channel=channel, external_id="x-1", updated_at=noon)
        store(loop, first)
        newer = ItemDraft(text="Sync loses my notes on iOS", channel=channel, external_id="x-1",
                          updated_at=noon + timedelta(minutes=5))
        assert store(loop, newer).updated == 1
        older = ItemDraft(text="Sync loses my notes", channel=channel, external_id="x-1",
                          updated_at=noon + timedelta(minutes=1), metadata={"late": True})
        assert store(loop, older).duplicates == 1
    assert {(item.channel, item.text_original, bool(item.metadata_json)) for item in items(loop)} == {
        (channel, "Sync loses my notes on iOS", False) for channel in ("forum", "gh", "api")}


def test_plugins_read_the_sources_edit_time() -> None:
    edited = "2026-05-01T10:30:00.000Z"
    post = {"post": {"id": 5, "topic_id": 7, "post_number": 2, "username": "ana", "raw": "Please add CSV export",
                     "updated_at": edited}}
    forum = discourse.handle_webhook(WebhookRequest(
        channel_name="forum", headers={"x-discourse-event": "post_edited"}, body=json.dumps(post).encode(),
        options={"allow_unsigned": True}, secret=None))
    issue = {"action": "edited", "repository": {"full_name": "acme/app"},
             "issue": {"id": 9, "number": 3, "title": "Crash", "body": "on start", "user": {"login": "bo"},
                       "updated_at": "2026-05-01T10:30:00Z"}}
    repo = github.handle_webhook(WebhookRequest(
        channel_name="gh", headers={"x-github-event": "issues"}, body=json.dumps(issue).encode(),
        options={"allow_unsigned": True}, secret=None))
    expected = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
    assert forum.items[0].updated_at == expected and repo.items[0].updated_at == expected


# Fault 4: heavy deliveries, off the event loop.

def test_delivery_over_the_item_limit_is_refused(client: TestClient, hook: FeedbackLoop) -> None:
    records = [{"id": f"d-{n}", "deleted": True} for n in range(MAX_DELIVERY_ITEMS + 1)]
    body = json.dumps(records).encode()
    response = client.post("/webhooks/hook", content=body, headers=webhook_headers(SECRET, body))
    assert response.status_code == 413 and str(MAX_DELIVERY_ITEMS) in response.json()["detail"]
    with hook.session() as session:
        assert session.scalar(select(ItemTombstone.id).limit(1)) is None


def test_a_delivery_of_many_deletions_is_done_in_bulk(client: TestClient, hook: FeedbackLoop,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for start in range(0, 1000, 500):
        deliver(client, [{"id": f"n-{n}", "text": f"note {n} is lost"} for n in range(start, start + 500)])
    with hook.session() as session:
        first = session.scalar(select(FeedbackItem).where(FeedbackItem.external_id == "n-0"))
        assert first is not None
        # n-0 was also seen in another channel (it stays, there) and, as n-1000, in this one (deleted too).
        session.add_all([ItemSighting(item_id=first.id, channel="hook", external_id="n-1000"),
                         ItemSighting(item_id=first.id, channel="mail", external_id="m-1", url="mailto:x")])
        session.add(Theme(label="lost notes", quotes=["note 5 is lost", "note 1 is lost", "kept words"]))
    scrubs: list[int] = []
    scrub = ingest_module.scrub_quotes
    monkeypatch.setattr(ingest_module, "scrub_quotes", lambda session, texts: scrubs.append(len(texts))
                        or scrub(session, texts))
    answer = deliver(client, [{"id": f"n-{n}", "deleted": True} for n in range(1, 1001)])
    assert answer["deleted"] == 1000 and scrubs == [999]
    assert deliver(client, [{"id": "n-0", "deleted": True}])["deleted"] == 1
    [survivor] = items(hook)
    assert (survivor.channel, survivor.external_id, survivor.url) == ("mail", "m-1", "mailto:x")
    with hook.session() as session:
        assert session.scalar(select(Theme.quotes)) == ["kept words"]
        assert len(session.scalars(select(ItemTombstone.external_id)).all()) == 1001
        assert session.scalar(select(ItemSighting.id).limit(1)) is None
    assert deliver(client, {"id": "n-3", "text": "note 3 is lost"})["duplicates"] == 1  # tombstoned


def test_long_texts_are_enriched_on_a_prefix_and_redacted_whole(client: TestClient, hook: FeedbackLoop,
                                                                auth: dict[str, str]) -> None:
    tail = " write to ana@example.com or call +44 20 7946 0958"
    long = ("I love the new dashboard. " + "The export is slow and broken. " * 700)[:19_000 - len(tail)] + tail
    records = [{"id": f"long-{n}", "text": f"{n} {long}"} for n in range(50)]
    assert deliver(client, records)["created"] == 50
    batch = {"items": [{"text": f"{n} {long}", "channel": "survey", "external_id": f"s-{n}"} for n in range(200)]}
    response = client.post("/api/v1/feedback", json=batch, headers=auth)
    assert response.status_code == 201 and response.json()["created"] == 200
    stored_items = items(hook)
    assert len(stored_items) == 250
    prefix_score = sentiment_of(f"0 {long}"[:SENTIMENT_PREFIX_CHARS])
    for item in stored_items:
        assert item.text_redacted.endswith("write to [EMAIL] or call [PHONE]")  # the end of the text too
        assert item.sentiment == pytest.approx(prefix_score, abs=0.05)
        assert item.kind == classify(item.text_original[:KIND_PREFIX_CHARS], item.sentiment)
    assert sentiment_of(long) == sentiment_of(long[:SENTIMENT_PREFIX_CHARS])


class _Blocking:
    """A channel type whose plugin works until the test lets it finish (at most ``wait_s``)."""

    def __init__(self, wait_s: float) -> None:
        self.release, self.started, self.wait_s = threading.Event(), threading.Event(), wait_s

    def handle(self, request: WebhookRequest) -> IntakeResult:
        self.started.set()
        if not self.release.wait(self.wait_s):
            raise WebhookRejected(503, "the event loop never ran while the plugin worked")
        return IntakeResult(items=[ItemDraft(text=request.body.decode(), external_id="slow-1")])

    @hookimpl
    def register_channel_types(self, register: Callable[[ChannelType], None]) -> None:
        register(ChannelType(name="blocking", description="test", handle_webhook=self.handle))


def test_plugin_work_runs_off_the_event_loop(loop: FeedbackLoop) -> None:
    plugin = _Blocking(wait_s=10.0)
    loop.pm.register(plugin)
    with loop.session() as session:
        add_channel(loop, session, "slow", "blocking", options={"allow_unsigned": True})
    intake = WebhookIntake(loop)

    async def scenario() -> int:
        receiving = asyncio.create_task(intake.receive("slow", {}, b"Search never finds old tickets"))
        # The event loop keeps running (as /healthz needs it to) while the plugin is at work.
        while not plugin.started.is_set():
            await asyncio.sleep(0.01)
        plugin.release.set()
        outcome = await receiving
        assert outcome.report is not None
        return outcome.report.created

    assert asyncio.run(scenario()) == 1
    assert count_items(loop) == 1


class _LockProbe:
    """Enrichment that checks, for one draft, whether another writer could take SQLite's write lock now."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.free: list[bool] = []

    @hookimpl
    def enrich_item(self, item: ItemDraft) -> None:
        if item.text.startswith("probe"):
            other = sqlite3.connect(self.database, timeout=0.2)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.rollback()
                self.free.append(True)
            except sqlite3.OperationalError:  # "database is locked": the batch holds it while enriching
                self.free.append(False)
            finally:
                other.close()


def test_a_batch_is_enriched_before_it_takes_the_write_lock(loop: FeedbackLoop, sqlite_url: str) -> None:
    probe = _LockProbe(sqlite_url.removeprefix("sqlite:///"))
    loop.pm.register(probe)
    report = store(loop, ItemDraft(text="Checkout is slow", channel="survey", external_id="s-1"),
                   ItemDraft(text="probe: search is slow", channel="survey", external_id="s-2"))
    assert report.created == 2 and probe.free == [True]  # webhooks' commits need not wait for this batch
