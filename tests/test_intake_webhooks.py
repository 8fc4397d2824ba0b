"""Webhook semantics shared by every channel: refusals store nothing, redeliveries and repeats add
nothing, edits re-theme, deletions leave the theme counts."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core.intake.channels import add_channel, receive_webhook
from core.loop import FeedbackLoop
from core.models import FeedbackItem, ThemeMembership, WebhookDelivery
from core.themes.build import embed_pending, recluster
from core.themes.views import theme_views
from plugins.generic_webhook import sign
from tests.support.intake import GITHUB_SECRET, count_items, github_delivery, github_payload

SECRET = "webhook-secret-123456"


@pytest.fixture
def hook(loop: FeedbackLoop, monkeypatch: pytest.MonkeyPatch) -> FeedbackLoop:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    with loop.session() as session:
        add_channel(loop, session, "hook", "webhook", secret_env="HOOK_SECRET")
    return loop


def post(client: TestClient, record: object, delivery: str | None = None, secret: str = SECRET) -> dict[str, object]:
    body = json.dumps(record).encode()
    headers = {"X-Feedbackloop-Signature": sign(secret, body), "Content-Type": "application/json"}
    if delivery:
        headers["X-Feedbackloop-Delivery"] = delivery
    response = client.post("/webhooks/hook", content=body, headers=headers)
    assert response.status_code == 202, response.text
    result: dict[str, object] = response.json()
    return result


def test_refusals_store_nothing(client: TestClient, hook: FeedbackLoop) -> None:
    body = json.dumps({"id": "1", "text": "Refunds take too long"}).encode()
    missing = client.post("/webhooks/hook", content=body)
    assert missing.status_code == 401 and "missing" in missing.json()["detail"]
    wrong = client.post("/webhooks/hook", content=body, headers={"X-Feedbackloop-Signature": sign("other", body)})
    assert wrong.status_code == 401 and "wrong" in wrong.json()["detail"]
    unknown = client.post("/webhooks/nope", content=body, headers={"X-Feedbackloop-Signature": sign(SECRET, body)})
    assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
    big = b'{"text": "' + b"a" * (1024 * 1024) + b'"}'
    too_big = client.post("/webhooks/hook", content=big, headers={"X-Feedbackloop-Signature": sign(SECRET, big)})
    assert too_big.status_code == 413 and "limit" in too_big.json()["detail"]
    junk = b"text=hello"
    not_json = client.post("/webhooks/hook", content=junk, headers={"X-Feedbackloop-Signature": sign(SECRET, junk)})
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["detail"]
    assert count_items(hook) == 0


def test_unset_secret_variable_is_503_not_401(client: TestClient, loop: FeedbackLoop) -> None:
    with loop.session() as session:
        add_channel(loop, session, "unset", "webhook", secret_env="FEEDBACKLOOP_TEST_UNSET_SECRET")
    response = client.post("/webhooks/unset", content=b"{}")
    assert response.status_code == 503 and "FEEDBACKLOOP_TEST_UNSET_SECRET" in response.json()["detail"]


def test_redelivery_and_repeats_are_one_item(client: TestClient, hook: FeedbackLoop) -> None:
    record = {"id": "r-1", "text": "Please add dark mode", "author": "ana"}
    assert post(client, record, delivery="del-1")["created"] == 1
    again = post(client, record, delivery="del-1")
    assert again["status"] == "redelivery" and again["created"] == 0
    assert post(client, record, delivery="del-2")["duplicates"] == 1  # same post, new delivery id
    assert count_items(hook) == 1
    with hook.session() as session:
        assert [d.delivery_id for d in session.scalars(select(WebhookDelivery))] == ["del-1", "del-2"]


def test_same_delivery_racing_is_still_one_item(any_loop: FeedbackLoop, monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("HOOK_SECRET", SECRET)
    with any_loop.session() as session:
        add_channel(any_loop, session, "hook", "webhook", secret_env="HOOK_SECRET")
    body = json.dumps({"id": "race", "text": "Login is slow"}).encode()
    headers = {"x-feedbackloop-signature": sign(SECRET, body), "x-feedbackloop-delivery": "same"}
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda _: receive_webhook(any_loop, "hook", headers, body), range(16)))
    assert sum(o.report.created for o in outcomes if o.report) == 1
    assert count_items(any_loop) == 1


@pytest.fixture
def themed(hook: FeedbackLoop) -> Iterator[tuple[FeedbackLoop, TestClient]]:
    with TestClient(create_app(hook.settings, loop=hook)) as test_client:
        for i in range(6):
            post(test_client, {"id": f"card-{i}", "text": f"card delivery late again {i}"})
            post(test_client, {"id": f"login-{i}", "text": f"app login password reset {i}"})
        with hook.session() as session:
            embed_pending(hook, session)
            recluster(hook, session)
        yield hook, test_client


def theme_of(loop: FeedbackLoop, external_id: str) -> int | None:
    with loop.session() as session:
        return session.scalar(select(ThemeMembership.theme_id).join(FeedbackItem)
                              .where(FeedbackItem.external_id == external_id))


def test_edit_updates_text_drops_embedding_and_rethemes(themed: tuple[FeedbackLoop, TestClient]) -> None:
    loop, client = themed
    card_theme, login_theme = theme_of(loop, "card-0"), theme_of(loop, "login-0")
    assert card_theme is not None and login_theme is not None and card_theme != login_theme
    assert post(client, {"id": "card-0", "text": "app login password reset again"})["updated"] == 1
    with loop.session() as session:
        item = session.scalar(select(FeedbackItem).where(FeedbackItem.external_id == "card-0"))
        assert item is not None and item.text_original == "app login password reset again"
        assert item.embedding is None  # waits to be embedded again
    assert theme_of(loop, "card-0") is None  # no longer counted in the card theme
    with loop.session() as session:
        assert embed_pending(loop, session) == 1
        recluster(loop, session)
    assert theme_of(loop, "card-0") == login_theme


def test_deletion_removes_the_item_from_its_theme_counts(themed: tuple[FeedbackLoop, TestClient]) -> None:
    loop, client = themed
    card_theme = theme_of(loop, "card-1")
    with loop.session() as session:
        before = {view.id: view.volume for view in theme_views(session)}
    body = json.dumps({"id": "card-1", "text": "x", "deleted": True}).encode()
    response = client.post("/webhooks/hook", content=body, headers={"X-Feedbackloop-Signature": sign(SECRET, body)})
    assert response.json()["deleted"] == 1
    with loop.session() as session:
        after = {view.id: view.volume for view in theme_views(session)}
    assert card_theme is not None and after[card_theme] == before[card_theme] - 1
    assert count_items(loop) == 11
    with loop.session() as session:  # its words are gone from the theme's quotes as well
        assert all("card delivery late again 1" not in quote for view in theme_views(session) for quote in view.quotes)


def test_github_redelivery_with_the_real_payload(client: TestClient, loop: FeedbackLoop,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GH_SECRET", GITHUB_SECRET)
    with loop.session() as session:
        add_channel(loop, session, "gh", "github", secret_env="GH_SECRET")
    body = github_payload("issues.opened.payload.json")
    headers = github_delivery("issues", body, "72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert [client.post("/webhooks/gh", content=body, headers=headers).status_code for _ in range(3)] == [202] * 3
    assert count_items(loop) == 1


def test_one_batch_with_creates_edits_repeats_and_deletions(any_loop: FeedbackLoop) -> None:
    """The server commits deliveries in groups: order within a group must not matter for the outcome."""
    from core.intake.batch import store_batch
    from core.intake.ingest import ingest
    from core.models import ItemSighting
    from core.types import IntakeResult, ItemDraft

    def delivery(delivery_id: str, *drafts: ItemDraft, deleted: tuple[str, ...] = ()) -> tuple[str, IntakeResult]:
        return "hook", IntakeResult(items=list(drafts), delivery_id=delivery_id, deleted_ids=list(deleted))

    with any_loop.session() as session:
        ingest(any_loop, session, [ItemDraft(text="Old item", channel="hook", external_id="b", author="x"),
                                   ItemDraft(text="Export is slow", channel="other", external_id="d", author="ann")])
    batch = [
        delivery("1", ItemDraft(text="Search misses accents", channel="hook", external_id="a", author="y")),
        delivery("2", ItemDraft(text="Search misses accents in names", channel="hook", external_id="a", author="y")),
        delivery("1", ItemDraft(text="Search misses accents", channel="hook", external_id="a", author="y")),
        delivery("3", deleted=("b",)),
        delivery("4", ItemDraft(text="Export is slow", channel="hook", external_id="c", author="ann")),
        delivery("5", ItemDraft(text="Fresh idea", channel="hook", external_id="e", author="z")),
    ]
    with any_loop.session() as session:
        outcomes = store_batch(any_loop, session, batch)
    assert [o.redelivery for o in outcomes] == [False, False, True, False, False, False]
    assert outcomes[1].report is not None and outcomes[1].report.updated == 1
    assert outcomes[4].report is not None and outcomes[4].report.linked == 1
    with any_loop.session() as session:
        rows = session.execute(select(FeedbackItem.external_id, FeedbackItem.text_original))
        texts = {row[0]: row[1] for row in rows}
        assert texts == {"a": "Search misses accents in names", "d": "Export is slow", "e": "Fresh idea"}
        assert [s.external_id for s in session.scalars(select(ItemSighting))] == ["c"]
        assert sorted(session.scalars(select(WebhookDelivery.delivery_id))) == ["1", "2", "3", "4", "5"]
