"""The Discourse channel with real captured deliveries (Fedora's forums), signed with a test secret."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from fastapi.testclient import TestClient

from core.intake.channels import add_channel
from core.loop import FeedbackLoop
from plugins.discourse import text_from_cooked, text_from_raw
from tests.support.intake import DISCOURSE_SECRET, count_items, discourse_capture, discourse_delivery, items

FORUM_URL = "https://forum.example.org"


@pytest.fixture
def forum(loop: FeedbackLoop, monkeypatch: pytest.MonkeyPatch) -> FeedbackLoop:
    monkeypatch.setenv("FORUM_SECRET", DISCOURSE_SECRET)
    with loop.session() as session:
        # Links point at the forum its admin configured, whatever X-Discourse-Instance a delivery claims.
        add_channel(loop, session, "forum", "discourse", secret_env="FORUM_SECRET", options={"forum_url": FORUM_URL})
    return loop


def author_pseudonym(loop: FeedbackLoop, name: str) -> str | None:
    return loop.pseudonyms.author(name)


def test_published_signature_vector_verifies() -> None:
    vector = discourse_capture("ping.signature_test_vector.json")
    expected = "sha256=" + hmac.new(vector["secret"].encode(), vector["raw_body"].encode(), hashlib.sha256).hexdigest()
    assert expected == vector["headers"]["X-Discourse-Event-Signature"]


def test_signature_vector_ping_through_the_endpoint_is_ignored(client: TestClient, loop: FeedbackLoop,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    vector = discourse_capture("ping.signature_test_vector.json")
    monkeypatch.setenv("VECTOR_SECRET", vector["secret"])
    with loop.session() as session:
        add_channel(loop, session, "vector", "discourse", secret_env="VECTOR_SECRET")
    response = client.post("/webhooks/vector", content=vector["raw_body"].encode(), headers=vector["headers"])
    assert response.status_code == 202 and response.json()["status"] == "ignored"
    tampered = client.post("/webhooks/vector", content=b'{"ping":"OK!"}', headers=vector["headers"])
    assert tampered.status_code == 401
    assert count_items(loop) == 0


def test_post_created_is_stored_with_text_author_url_and_metadata(client: TestClient, forum: FeedbackLoop) -> None:
    # The Fedora capture lost its raw/cooked fields (see SOURCE.md); real Discourse sends `raw`, restored here.
    raw = "The docs meeting agenda is missing the [quote=\"x, post:1\"]old[/quote] translation item.\n\n```\nlog\n```"
    body, headers = discourse_delivery(discourse_capture("post_created.fedora.json"), body_changes={"raw": raw})
    response = client.post("/webhooks/forum", content=body, headers=headers)
    assert response.status_code == 202 and response.json()["created"] == 1
    [item] = items(forum)
    assert item.text_original == "The docs meeting agenda is missing the translation item."
    assert item.external_id == "post-79563"
    assert item.url == f"{FORUM_URL}/t/docs-meeting-agenda-2023-02-08/46582/3"
    assert item.author_pseudonym == author_pseudonym(forum, "darknao")
    assert item.metadata_json["topic_title"] == "Docs meeting agenda: 2023-02-08"
    assert item.metadata_json["category_slug"] == "project"
    assert item.metadata_json["category_id"] == 7
    assert item.created_at.year == 2023


def test_captured_post_without_text_is_ignored_not_stored(client: TestClient, forum: FeedbackLoop) -> None:
    body, headers = discourse_delivery(discourse_capture("post_created.fedora.json"))
    response = client.post("/webhooks/forum", content=body, headers=headers)
    assert response.status_code == 202 and response.json()["status"] == "ignored"
    assert "no text" in response.json()["reason"] and count_items(forum) == 0


def test_post_edited_updates_the_stored_post(client: TestClient, forum: FeedbackLoop) -> None:
    capture = discourse_capture("post_edited.fedora.json")
    first, headers = discourse_delivery(capture, body_changes={"raw": "Upgrade from F35 fails with a GPG error."})
    created = dict(headers, **{"X-Discourse-Event": "post_created", "X-Discourse-Event-Id": "1"})
    assert client.post("/webhooks/forum", content=first, headers=created).json()["created"] == 1
    edited, headers = discourse_delivery(capture, body_changes={"cooked": "<p>Upgrade fails: <b>GPG</b> key</p>"
                                                                          "<pre><code>dnf log</code></pre>"})
    response = client.post("/webhooks/forum", content=edited, headers=headers)
    assert response.json()["updated"] == 1
    [item] = items(forum)
    assert item.text_original == "Upgrade fails: GPG key"
    assert item.url == f"{FORUM_URL}/t/problems-upgrading-via-terminal-from-f35-to-f37/31544/38"


def test_topic_created_then_opening_post_are_one_item(client: TestClient, forum: FeedbackLoop) -> None:
    capture = discourse_capture("topic_created.fedora.json")
    body, headers = discourse_delivery(capture)
    assert client.post("/webhooks/forum", content=body, headers=headers).json()["created"] == 1
    [topic] = items(forum)
    assert topic.text_original == "No updates published for f37 Silverblue since Feb 9th?"
    assert topic.metadata_json["tags"] == ["nvidia", "silverblue"]
    assert topic.url == f"{FORUM_URL}/t/no-updates-published-for-f37-silverblue-since-feb-9th/31739"
    assert topic.author_pseudonym == author_pseudonym(forum, "awarda")
    opening = {"post": {"id": 555, "topic_id": 31739, "post_number": 1, "username": "awarda", "post_type": 1,
                        "raw": "rpm-ostree upgrade finds nothing new.", "topic_slug": capture["body"]["topic"]["slug"],
                        "topic_title": "No updates published for f37 Silverblue since Feb 9th?", "category_id": 97}}
    raw = json.dumps(opening).encode()
    post_headers = dict(headers, **{"X-Discourse-Event": "post_created", "X-Discourse-Event-Id": "2",
                                    "X-Discourse-Event-Signature": _sign(raw)})
    assert client.post("/webhooks/forum", content=raw, headers=post_headers).json()["updated"] == 1
    edited_body, edited_headers = discourse_delivery(discourse_capture("topic_edited.fedora.json"))
    assert client.post("/webhooks/forum", content=edited_body, headers=edited_headers).status_code == 202
    [item] = items(forum)
    assert item.text_original.endswith("rpm-ostree upgrade finds nothing new.")
    assert item.metadata_json["tags"] == ["f37", "silverblue"]  # topic_edited brought the new tags


def _sign(raw: bytes) -> str:
    from plugins.webhook_signing import sign

    return sign(DISCOURSE_SECRET, raw)


def test_unhandled_event_is_ignored(client: TestClient, forum: FeedbackLoop) -> None:
    body, headers = discourse_delivery(discourse_capture("solved_accepted_solution.fedora.json"))
    response = client.post("/webhooks/forum", content=body, headers=headers)
    assert response.status_code == 202 and response.json()["status"] == "ignored"
    assert count_items(forum) == 0


def test_staff_bots_and_categories_can_be_excluded(client: TestClient, loop: FeedbackLoop,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORUM_SECRET", DISCOURSE_SECRET)
    with loop.session() as session:
        add_channel(loop, session, "strict", "discourse", secret_env="FORUM_SECRET",
                    options={"exclude_staff": "true", "exclude_categories": "project,42"})
    capture = discourse_capture("post_created.fedora.json")
    for changes, reason in (({"raw": "x", "staff": True, "category_id": 1, "category_slug": "a"}, "staff"),
                            ({"raw": "x", "user_id": -1, "username": "system"}, "bot"),
                            ({"raw": "x"}, "category project")):
        body, headers = discourse_delivery(capture, body_changes=changes)
        response = client.post("/webhooks/strict", content=body, headers=headers).json()
        assert response["status"] == "ignored" and reason in response["reason"]
    assert count_items(loop) == 0


def test_post_destroyed_and_recovered(client: TestClient, forum: FeedbackLoop) -> None:
    capture = discourse_capture("post_created.fedora.json")
    body, headers = discourse_delivery(capture, body_changes={"raw": "Agenda page is hard to find."})
    client.post("/webhooks/forum", content=body, headers=headers)
    relabelled = dict(headers, **{"X-Discourse-Event": "post_destroyed", "X-Discourse-Event-Id": "8"})
    response = client.post("/webhooks/forum", content=body, headers=relabelled).json()
    assert response["status"] == "ignored" and count_items(forum) == 1  # the signed body says it stands
    gone, gone_headers = discourse_delivery(capture, body_changes={"raw": "Agenda page is hard to find.",
                                                                   "deleted_at": "2024-02-09T10:00:00.000Z"})
    destroyed = dict(gone_headers, **{"X-Discourse-Event": "post_destroyed", "X-Discourse-Event-Id": "9"})
    assert client.post("/webhooks/forum", content=gone, headers=destroyed).json()["deleted"] == 1
    assert count_items(forum) == 0
    late = dict(headers, **{"X-Discourse-Event-Id": "10"})  # a late redelivery must not resurrect it
    client.post("/webhooks/forum", content=body, headers=late)
    assert count_items(forum) == 0
    recovered = dict(headers, **{"X-Discourse-Event": "post_recovered", "X-Discourse-Event-Id": "11"})
    assert client.post("/webhooks/forum", content=body, headers=recovered).json()["created"] == 1


def test_text_extraction_drops_quotes_and_code() -> None:
    cooked = ('<aside class="quote"><blockquote><p>old words</p></blockquote></aside>'
              "<p>Mine &amp; only <code>inline</code></p><pre><code>trace</code></pre>")
    assert text_from_cooked(cooked) == "Mine & only inline"
    assert text_from_raw('[quote="a, post:1, topic:2"]\nold\n[/quote]\nNew text\n~~~\ncode\n~~~') == "New text"
