"""The Zendesk channel with ticket-event payloads written to Zendesk's documentation (tests/data/zendesk)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.intake.channels import ChannelError, add_channel
from core.loop import FeedbackLoop
from tests.support.intake import count_items, items

ZENDESK_DATA = Path(__file__).resolve().parent / "data" / "zendesk"
# The signing secret of the documentation's verification example.
SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
ZENDESK_URL = "https://acme.zendesk.com"


@pytest.fixture
def desk(loop: FeedbackLoop, monkeypatch: pytest.MonkeyPatch) -> FeedbackLoop:
    monkeypatch.setenv("ZD_SECRET", SECRET)
    with loop.session() as session:
        add_channel(loop, session, "desk", "zendesk", secret_env="ZD_SECRET", options={"zendesk_url": ZENDESK_URL})
    return loop


def event(name: str, **detail_changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((ZENDESK_DATA / name).read_text())
    payload["detail"].update(detail_changes)
    return payload


def now_stamp(offset_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).strftime("%Y-%m-%dT%H:%M:%SZ")


def signed(body: dict[str, Any] | bytes, secret: str = SECRET,
           timestamp: str | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and the headers Zendesk sends with it, signed as the documentation describes."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    stamp = timestamp or now_stamp()
    signature = base64.b64encode(hmac.new(secret.encode(), stamp.encode() + raw, hashlib.sha256).digest()).decode()
    return raw, {"X-Zendesk-Webhook-Signature": signature, "X-Zendesk-Webhook-Signature-Timestamp": stamp,
                 "X-Zendesk-Account-Id": "22129848", "X-Zendesk-Webhook-Id": "01F1KRFQ6BG29CNWFR60NK5FNY",
                 "X-Zendesk-Webhook-Invocation-Id": "8350205582", "Content-Type": "application/json"}


def send(client: TestClient, body: dict[str, Any] | bytes, channel: str = "desk") -> dict[str, Any]:
    raw, headers = signed(body)
    response = client.post(f"/webhooks/{channel}", content=raw, headers=headers)
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_documented_ticket_created_is_the_ticket_item(client: TestClient, desk: FeedbackLoop) -> None:
    raw = (ZENDESK_DATA / "ticket.created.json").read_bytes()  # sent byte for byte as stored
    assert send(client, raw)["created"] == 1
    [item] = items(desk)
    assert item.external_id == "ticket-5158"
    assert item.text_original == "ticketinfo_2294a6e9ece2\n\nticket_info_desc_2294a6e9ece2"
    assert item.author_pseudonym == desk.pseudonyms.author("8447388090494")  # the requester
    assert item.url == f"{ZENDESK_URL}/agent/tickets/5158"
    metadata = item.metadata_json
    assert metadata["thread"] == "ticket-5158" and metadata["opens_thread"] is True and metadata["staff"] is False
    assert metadata["organization"] == 8447346622462 and metadata["ticket_id"] == 5158
    assert metadata["status"] == "open" and metadata["priority"] == "low"
    assert metadata["tags"] == ["ticket-info-test-tag"]
    assert item.created_at.year == 2025


def test_refusals_store_nothing(client: TestClient, desk: FeedbackLoop) -> None:
    raw, headers = signed(event("ticket.created.json"))
    missing = client.post("/webhooks/desk", content=raw, headers={"Content-Type": "application/json"})
    assert missing.status_code == 401 and "missing" in missing.json()["detail"]
    _, wrong = signed(raw, secret="another-secret")
    assert client.post("/webhooks/desk", content=raw, headers=wrong).status_code == 401
    tampered = client.post("/webhooks/desk", content=raw.replace(b"5158", b"5159"), headers=headers)
    assert tampered.status_code == 401
    _, stale = signed(raw, timestamp=now_stamp(-3600))  # a captured delivery replayed an hour later
    stale_response = client.post("/webhooks/desk", content=raw, headers=stale)
    assert stale_response.status_code == 401 and "tolerance" in stale_response.json()["detail"]
    _, malformed = signed(raw, timestamp="yesterday")
    assert client.post("/webhooks/desk", content=raw, headers=malformed).status_code == 401
    assert client.post("/webhooks/nowhere", content=raw, headers=headers).status_code == 404
    big = b'{"detail": "' + b"a" * (1024 * 1024) + b'"}'
    _, big_headers = signed(big)
    assert client.post("/webhooks/desk", content=big, headers=big_headers).status_code == 413
    for junk in (b"ticket_id=5158", b"[1, 2]", json.dumps({"type": "zen:event-type:ticket.created"}).encode()):
        junk_raw, junk_headers = signed(junk)
        assert client.post("/webhooks/desk", content=junk_raw, headers=junk_headers).status_code == 400
    assert count_items(desk) == 0


@pytest.mark.parametrize("body", [
    json.loads((ZENDESK_DATA / "user.active_changed.json").read_text()),
    {**event("ticket.created.json"), "type": "zen:event-type:ticket.agent_assignment_changed"},
    {"ticket_id": "5158", "title": "Export broken", "comment": "from a trigger's own JSON body"},
], ids=["user-event", "unhandled-ticket-event", "trigger-body"])
def test_unhandled_events_are_202_ignored(client: TestClient, desk: FeedbackLoop, body: dict[str, Any]) -> None:
    answer = send(client, body)
    assert answer["status"] == "ignored" and answer["reason"]
    assert count_items(desk) == 0


def test_end_user_comment_is_feedback_in_the_ticket_thread(client: TestClient, desk: FeedbackLoop) -> None:
    assert send(client, event("ticket.comment_added.end_user.json"))["created"] == 1
    [item] = items(desk)
    assert item.external_id == "comment-10001" and item.text_original == "The export still times out after the update."
    assert item.author_pseudonym == desk.pseudonyms.author("8447388090495")
    assert item.metadata_json["thread"] == "ticket-5158" and item.metadata_json["opens_thread"] is False
    assert item.metadata_json["staff"] is False and item.metadata_json["organization"] == 8447346622462
    # The author's name arrives with the comment; it is kept nowhere.
    assert "Jane" not in json.dumps(item.metadata_json) and item.author_pseudonym != "8447388090495"


def test_agent_comments_only_when_included_and_internal_notes_never(client: TestClient, desk: FeedbackLoop) -> None:
    agent = send(client, event("ticket.comment_added.agent.json"))
    assert agent["status"] == "ignored" and "agent" in agent["reason"]
    with desk.session() as session:
        add_channel(desk, session, "desk-all", "zendesk", secret_env="ZD_SECRET",
                    options={"include_agent_comments": "true"})
    assert send(client, event("ticket.comment_added.agent.json"), channel="desk-all")["created"] == 1
    [item] = items(desk)
    assert item.metadata_json["staff"] is True
    note = send(client, event("ticket.comment_added.internal_note.json"), channel="desk-all")
    assert note["status"] == "ignored" and "internal note" in note["reason"] and count_items(desk) == 1
    private_ticket = send(client, event("ticket.created.json", is_public=False), channel="desk-all")
    assert private_ticket["status"] == "ignored" and count_items(desk) == 1


def test_first_comment_is_the_ticket_not_a_second_item(client: TestClient, desk: FeedbackLoop) -> None:
    opening = event("ticket.comment_added.end_user.json")
    opening["event"]["comment"]["body"] = opening["detail"]["description"]
    assert send(client, opening)["created"] == 1
    created = send(client, event("ticket.created.json"))
    assert created["created"] == 0
    assert [item.external_id for item in items(desk)] == ["ticket-5158"]


def test_redelivery_is_recognised_by_the_event_id(client: TestClient, desk: FeedbackLoop) -> None:
    body = event("ticket.comment_added.end_user.json")
    assert send(client, body)["created"] == 1
    again = send(client, body)  # Zendesk's retry: same event id, newly signed
    assert again["status"] == "redelivery" and again["created"] == 0
    assert count_items(desk) == 1


def test_description_and_status_changes_edit_the_ticket(client: TestClient, desk: FeedbackLoop) -> None:
    send(client, event("ticket.created.json"))
    assert send(client, event("ticket.description_changed.json"))["updated"] == 1
    send(client, event("ticket.status_changed.json", description="ticket_info_desc_2294a6e9ece2 (edited)"))
    [item] = items(desk)
    assert item.text_original.endswith("ticket_info_desc_2294a6e9ece2 (edited)")
    assert item.metadata_json["status"] == "solved"
    late = event("ticket.created.json")  # an older snapshot arriving late brings nothing back
    late["id"] = "late-retry-of-created"
    send(client, late)
    assert items(desk)[0].text_original.endswith("(edited)")


def test_comment_made_private_and_ticket_deletion(client: TestClient, desk: FeedbackLoop) -> None:
    send(client, event("ticket.created.json"))
    send(client, event("ticket.comment_added.end_user.json"))
    assert count_items(desk) == 2
    assert send(client, event("ticket.comment_made_private.json"))["deleted"] == 1
    assert [item.external_id for item in items(desk)] == ["ticket-5158"]
    assert send(client, event("ticket.soft_deleted.json"))["deleted"] == 1
    assert count_items(desk) == 0
    late = event("ticket.created.json")
    late["id"] = "late-delivery"
    send(client, late)
    assert count_items(desk) == 0  # a late delivery does not bring a deleted ticket back
    assert send(client, event("ticket.undeleted.json"))["created"] == 1
    assert [item.external_id for item in items(desk)] == ["ticket-5158"]


def test_organisation_drives_impact(client: TestClient, loop: FeedbackLoop, monkeypatch: pytest.MonkeyPatch,
                                    tmp_path: Path) -> None:
    monkeypatch.setenv("ZD_SECRET", SECRET)
    lookup = tmp_path / "accounts.csv"
    lookup.write_text("key,tier,value\n8447346622462,enterprise,120000\n")
    with loop.session() as session:
        add_channel(loop, session, "weighted", "zendesk", secret_env="ZD_SECRET",
                    options={"impact_file": str(lookup), "impact_key": "organization", "exclude_tags": "spam"})
    send(client, event("ticket.created.json"), channel="weighted")
    [item] = items(loop)
    assert item.customer_tier == "enterprise" and item.account_value == 120000
    excluded = send(client, event("ticket.comment_added.end_user.json", tags=["spam"]), channel="weighted")
    assert excluded["status"] == "ignored" and "spam" in excluded["reason"]


def test_options_are_checked_when_the_channel_is_added(loop: FeedbackLoop) -> None:
    with loop.session() as session, pytest.raises(ChannelError, match="zendesk_ulr"):
        add_channel(loop, session, "typo", "zendesk", options={"zendesk_ulr": ZENDESK_URL})


def test_unsigned_only_when_allowed(client: TestClient, loop: FeedbackLoop) -> None:
    body = (ZENDESK_DATA / "ticket.created.json").read_bytes()
    with loop.session() as session:
        add_channel(loop, session, "open", "zendesk")
        add_channel(loop, session, "trusted", "zendesk", options={"allow_unsigned": "true"})
    assert client.post("/webhooks/open", content=body).status_code == 401
    assert client.post("/webhooks/trusted", content=body).json()["created"] == 1
