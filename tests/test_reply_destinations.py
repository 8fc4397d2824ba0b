"""Where closing-the-loop replies go and what webhook headers leave behind: the host comes only from the
channel an admin configured, never from a stored item's metadata or url, and unsigned headers
(``X-Discourse-Instance``, delivery ids) are not stored as data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from core.intake.channels import add_channel
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import LoopReply, Theme, WebhookDelivery
from core.routing.replies import send_loop_replies
from core.themes.build import embed_pending, recluster
from core.themes.review import update_theme
from core.types import ItemDraft
from plugins.webhook_signing import sign
from tests.support.intake import GITHUB_SECRET, github_delivery, github_payload, items
from tests.support.loops import make_loop
from tests.test_outbound import Listener
from tests.test_routing_loop import API_KEY_ENV, DiscourseApi, GitHubApi

FORUM_URL = "https://forum.example.org"
FORUM_SECRET = "forum-secret-0123"


@pytest.fixture
def attacker() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def closed_theme(loop: FeedbackLoop, channel: str, metadata_of: dict[int, dict[str, object]],
                 url_of: dict[int, str | None]) -> None:
    """Five items per thread in ``channel``, one theme, marked done."""
    with loop.session() as session:
        ingest(loop, session, [ItemDraft(
            text=f"please add dark mode to the mobile app, my eyes hurt at night ({thread}-{n})", channel=channel,
            external_id=f"post-{thread}-{n}", author=f"user{n}", url=url_of.get(thread), metadata=metadata)
            for thread, metadata in metadata_of.items() for n in range(5)])
        embed_pending(loop, session)
        recluster(loop, session)
        theme = session.scalars(select(Theme)).one()
        update_theme(loop, session, theme.id, actor="pm", status="done")


def reply_states(loop: FeedbackLoop) -> dict[str, tuple[str, str | None]]:
    with loop.session() as session:
        return {reply.thread_ref: (reply.state, reply.last_error) for reply in session.scalars(select(LoopReply))}


def test_a_discourse_host_named_by_an_item_never_gets_the_api_key(tmp_path: Path, attacker: Listener,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_KEY_ENV, "forum-key")
    forum = DiscourseApi()
    loop = make_loop(f"sqlite:///{tmp_path / 'replies.db'}")
    try:
        with loop.session() as session:
            add_channel(loop, session, "community", "discourse",
                        options={"reply_url": forum.url, "reply_api_key_env": API_KEY_ENV})
            # Configured without reply_url: the items' own host must not stand in for it.
            add_channel(loop, session, "bare", "discourse", options={"reply_api_key_env": API_KEY_ENV})
        claimed = {"discourse_instance": attacker.url}
        with loop.session() as session:
            ingest(loop, session, [ItemDraft(
                text=f"please add dark mode to the mobile app, my eyes hurt at night (bare-{n})", channel="bare",
                external_id=f"post-202-{n}", url=f"{attacker.url}/t/x/202", metadata={"topic_id": 202, **claimed})
                for n in range(5)])
        closed_theme(loop, "community", {101: {"topic_id": 101, **claimed}}, {101: f"{attacker.url}/t/x/101"})
        assert send_loop_replies(loop) == 1
    finally:
        forum.server.shutdown()
        forum.server.server_close()
        loop.close()
    assert [post["topic_id"] for post in forum.posts] == [101] and forum.rejected == []
    assert attacker.requests == []
    states = reply_states(loop)
    assert states["101"] == ("sent", None)
    assert states["202"][0] == "failed" and "reply_url" in str(states["202"][1])


def test_a_github_reply_goes_only_to_repositories_the_channel_names(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDBACKLOOP_TEST_GITHUB_TOKEN", "gh-token")
    github = GitHubApi()
    loop = make_loop(f"sqlite:///{tmp_path / 'gh.db'}")
    try:
        with loop.session() as session:
            add_channel(loop, session, "repo", "github", options={
                "reply_api_url": github.url, "reply_token_env": "FEEDBACKLOOP_TEST_GITHUB_TOKEN",
                "reply_repositories": "acme/app"})
        closed_theme(loop, "repo", {number: {"repository": repository, "number": number, "github_event": "issues"}
                                    for number, repository in ((7, "acme/app"), (8, "victim/private"))}, {})
        assert send_loop_replies(loop) == 1
    finally:
        github.server.shutdown()
        github.server.server_close()
        loop.close()
    assert [path for path, _ in github.comments] == ["/repos/acme/app/issues/7/comments"]
    state, error = reply_states(loop)["victim/private#8"]
    assert state == "failed" and "reply_repositories" in str(error)


def discourse_post(post_id: int, raw: str) -> bytes:
    return json.dumps({"post": {"id": post_id, "topic_id": 31, "post_number": 2, "username": "ann", "post_type": 1,
                                "topic_slug": "checkout", "raw": raw, "created_at": "2026-01-05T10:00:00Z"}}).encode()


def discourse_headers(body: bytes, delivery: str) -> dict[str, str]:
    return {"X-Discourse-Event": "post_created", "X-Discourse-Event-Id": delivery, "Content-Type": "application/json",
            "X-Discourse-Instance": "http://attacker.example", "X-Discourse-Event-Signature": sign(FORUM_SECRET, body)}


def stored_delivery_ids(loop: FeedbackLoop) -> list[str]:
    with loop.session() as session:
        return list(session.scalars(select(WebhookDelivery.delivery_id)))


def test_unsigned_discourse_headers_are_not_stored(client: TestClient, loop: FeedbackLoop,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORUM_SECRET", FORUM_SECRET)
    with loop.session() as session:
        add_channel(loop, session, "forum", "discourse", secret_env="FORUM_SECRET", options={"forum_url": FORUM_URL})
    body = discourse_post(1, "The checkout page times out when I pay with a card.")
    assert client.post("/webhooks/forum", content=body, headers=discourse_headers(body, "77")).json()["created"] == 1
    [item] = items(loop)
    assert item.url == f"{FORUM_URL}/t/checkout/31/2"
    assert "attacker" not in json.dumps(item.metadata_json) and "discourse_instance" not in item.metadata_json
    assert all(stored != "77" and "77" not in stored.split(":") for stored in stored_delivery_ids(loop))
    # A redelivery (same id, same signed body) is still recognised; a made-up id reused with another signed
    # body cannot make that real delivery look like one already seen.
    repeated = client.post("/webhooks/forum", content=body, headers=discourse_headers(body, "77"))
    assert repeated.json()["status"] == "redelivery"
    other = discourse_post(2, "Paying by card fails at the last step of checkout.")
    assert client.post("/webhooks/forum", content=other, headers=discourse_headers(other, "77")).json()["created"] == 1


def test_the_github_delivery_header_is_not_stored(client: TestClient, loop: FeedbackLoop,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GH_SECRET", GITHUB_SECRET)
    with loop.session() as session:
        add_channel(loop, session, "gh", "github", secret_env="GH_SECRET")
    body = github_payload("issues.opened.payload.json")
    headers = github_delivery("issues", body, "unsigned-delivery-id")
    assert client.post("/webhooks/gh", content=body, headers=headers).status_code == 202
    assert client.post("/webhooks/gh", content=body, headers=headers).json()["status"] == "redelivery"
    assert [stored for stored in stored_delivery_ids(loop) if "unsigned-delivery-id" in stored] == []
