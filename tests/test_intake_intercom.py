"""The Intercom channel with notifications written to Intercom's documentation (tests/data/intercom)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.intake.channels import ChannelError, add_channel
from core.loop import FeedbackLoop
from tests.support.intake import count_items, items

INTERCOM_DATA = Path(__file__).resolve().parent / "data" / "intercom"
SECRET = "intercom-client-secret-test-8910"
LINK = "https://app.intercom.com/a/inbox/{app_id}/inbox/conversation/{conversation_id}"


@pytest.fixture
def inbox(loop: FeedbackLoop, monkeypatch: pytest.MonkeyPatch) -> FeedbackLoop:
    monkeypatch.setenv("IC_SECRET", SECRET)
    with loop.session() as session:
        add_channel(loop, session, "inbox", "intercom", secret_env="IC_SECRET", options={"link_template": LINK})
    return loop


def notification(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((INTERCOM_DATA / name).read_text())
    return loaded


def signed(body: dict[str, Any] | bytes, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    """The body and the headers Intercom sends with it: ``sha1=`` and the hex HMAC-SHA1 of the raw body."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    signature = "sha1=" + hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest()
    return raw, {"X-Hub-Signature": signature, "User-Agent": "intercom-parrot-service-client/1.0",
                 "Accept": "application/json", "Content-Type": "application/json"}


def send(client: TestClient, body: dict[str, Any] | bytes, channel: str = "inbox") -> dict[str, Any]:
    raw, headers = signed(body)
    response = client.post(f"/webhooks/{channel}", content=raw, headers=headers)
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_new_conversation_is_the_opening_item(client: TestClient, inbox: FeedbackLoop) -> None:
    raw = (INTERCOM_DATA / "conversation.user.created.json").read_bytes()  # byte for byte as stored
    assert send(client, raw)["created"] == 1
    [item] = items(inbox)
    assert item.external_id == "conversation-1295"
    assert item.text_original == "Exports to CSV fail with a timeout since yesterday's update."
    assert item.author_pseudonym == inbox.pseudonyms.author("5ba682d23d7cf92bef87bfd4")
    assert item.url == "https://app.intercom.com/a/inbox/ecahpwf5/inbox/conversation/1295"
    metadata = item.metadata_json
    assert metadata["thread"] == "conversation-1295" and metadata["opens_thread"] is True
    assert metadata["staff"] is False and metadata["state"] == "open" and metadata["tags"] == ["Test tag"]
    assert metadata["company"] == "Blue Sun" and metadata["company_plan"] == "Pro"
    assert metadata["company_monthly_spend"] == 100 and metadata["company_id"] == 6
    stored = json.dumps(metadata)
    assert "jane" not in stored.lower() and "@" not in stored  # names and e-mails arrive; none is kept
    assert item.created_at.year == 2022


def test_refusals_store_nothing(client: TestClient, inbox: FeedbackLoop) -> None:
    raw, headers = signed(notification("conversation.user.created.json"))
    missing = client.post("/webhooks/inbox", content=raw, headers={"Content-Type": "application/json"})
    assert missing.status_code == 401 and "missing" in missing.json()["detail"]
    _, wrong = signed(raw, secret="someone-else")
    assert client.post("/webhooks/inbox", content=raw, headers=wrong).status_code == 401
    sha256 = dict(headers, **{"X-Hub-Signature": "sha256=" + hmac.new(SECRET.encode(), raw, "sha256").hexdigest()})
    assert client.post("/webhooks/inbox", content=raw, headers=sha256).status_code == 401
    assert client.post("/webhooks/inbox", content=raw + b" ", headers=headers).status_code == 401
    assert client.post("/webhooks/elsewhere", content=raw, headers=headers).status_code == 404
    big = b'{"type": "notification_event", "x": "' + b"a" * (1024 * 1024) + b'"}'
    _, big_headers = signed(big)
    assert client.post("/webhooks/inbox", content=big, headers=big_headers).status_code == 413
    for junk in (b"topic=ping", b'{"type": "conversation"}',
                 json.dumps({"type": "notification_event", "topic": "conversation.user.created"}).encode()):
        junk_raw, junk_headers = signed(junk)
        assert client.post("/webhooks/inbox", content=junk_raw, headers=junk_headers).status_code == 400
    assert count_items(inbox) == 0


@pytest.mark.parametrize("name", ["ping.json", "conversation.admin.noted.json"])
def test_ping_and_notes_are_202_ignored(client: TestClient, inbox: FeedbackLoop, name: str) -> None:
    answer = send(client, notification(name))
    assert answer["status"] == "ignored" and answer["reason"]
    assert count_items(inbox) == 0


def test_user_reply_is_feedback_without_its_quote(client: TestClient, inbox: FeedbackLoop) -> None:
    assert send(client, notification("conversation.user.replied.json"))["created"] == 1
    [item] = items(inbox)
    assert item.external_id == "part-4" and item.text_original == "It happens with every export over 10k rows."
    assert item.metadata_json["thread"] == "conversation-1295" and item.metadata_json["opens_thread"] is False
    assert item.metadata_json["staff"] is False and item.metadata_json["company"] == "Blue Sun"


def test_admin_replies_only_when_included(client: TestClient, inbox: FeedbackLoop) -> None:
    answer = send(client, notification("conversation.admin.replied.json"))
    assert answer["status"] == "ignored" and count_items(inbox) == 0
    with inbox.session() as session:
        add_channel(inbox, session, "inbox-all", "intercom", secret_env="IC_SECRET",
                    options={"include_admin_replies": "true"})
    assert send(client, notification("conversation.admin.replied.json"), channel="inbox-all")["created"] == 1
    [item] = items(inbox)
    assert item.metadata_json["staff"] is True and "Operator" not in json.dumps(item.metadata_json)
    bot = notification("conversation.admin.replied.json")
    bot["id"] = "notif_bot"
    part = bot["data"]["item"]["conversation_parts"]["conversation_parts"][0]
    part.update(id="50", body="<p>Here is an article that may help.</p>")
    part["author"].update(from_ai_agent=True)
    assert send(client, bot, channel="inbox-all")["status"] == "ignored"


def test_redelivery_is_recognised_by_the_notification_id(client: TestClient, inbox: FeedbackLoop) -> None:
    body = notification("conversation.user.created.json")
    assert send(client, body)["created"] == 1
    body["delivery_attempts"] = 2  # Intercom's retry: the same notification, one more attempt counted
    again = send(client, body)
    assert again["status"] == "redelivery" and again["created"] == 0
    assert count_items(inbox) == 1


def test_edits_update_text_and_state(client: TestClient, inbox: FeedbackLoop) -> None:
    send(client, notification("conversation.user.created.json"))
    send(client, notification("conversation.user.replied.json"))
    edited = notification("conversation.user.replied.json")
    edited["id"] = "notif_edit"
    part = edited["data"]["item"]["conversation_parts"]["conversation_parts"][0]
    part.update(body="<p>Every export over 5k rows, in fact.</p>", updated_at=part["updated_at"] + 60)
    assert send(client, edited)["updated"] == 1
    send(client, notification("conversation.admin.closed.json"))
    by_id = {item.external_id: item for item in items(inbox)}
    assert by_id["part-4"].text_original == "Every export over 5k rows, in fact."
    assert by_id["conversation-1295"].metadata_json["state"] == "closed"
    assert by_id["conversation-1295"].text_original.startswith("Exports to CSV fail")
    assert len(by_id) == 2  # the close part, with no text, is no item


def test_redaction_and_deletion(client: TestClient, inbox: FeedbackLoop) -> None:
    send(client, notification("conversation.user.created.json"))
    send(client, notification("conversation.user.replied.json"))
    assert send(client, notification("conversation_part.redacted.json"))["deleted"] == 1
    assert [item.external_id for item in items(inbox)] == ["conversation-1295"]
    late = notification("conversation.user.replied.json")
    late["id"] = "notif_late"
    send(client, late)
    assert count_items(inbox) == 1  # a late copy of the redacted reply is not stored again
    assert send(client, notification("conversation.deleted.json"))["deleted"] == 1
    assert count_items(inbox) == 0


def test_company_drives_impact(client: TestClient, loop: FeedbackLoop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IC_SECRET", SECRET)
    with loop.session() as session:
        add_channel(loop, session, "weighted", "intercom", secret_env="IC_SECRET",
                    options={"tier_field": "company_plan", "value_field": "company_monthly_spend"})
    send(client, notification("conversation.user.created.json"), channel="weighted")
    [item] = items(loop)
    assert item.customer_tier == "Pro" and item.account_value == 100


def test_options_are_checked_when_the_channel_is_added(loop: FeedbackLoop) -> None:
    with loop.session() as session, pytest.raises(ChannelError, match="include_admin_reply"):
        add_channel(loop, session, "typo", "intercom", options={"include_admin_reply": "true"})
