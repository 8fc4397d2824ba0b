"""The Teams outgoing-webhook channel with an activity written to Microsoft's documentation
(tests/data/teams/SOURCE.md), signed as Teams signs: HMAC-SHA256 with the base64-decoded security token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.intake.channels import MAX_WEBHOOK_BYTES, add_channel, receive_webhook
from core.loop import FeedbackLoop
from plugins.teams import plain_text
from tests.support.intake import count_items, items

TEAMS_DATA = Path(__file__).resolve().parent / "data" / "teams"
# A security token as Teams issues them: 32 random bytes, base64.
TOKEN = base64.b64encode(hashlib.sha256(b"feedbackloop teams test token").digest()).decode()


def activity(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((TEAMS_DATA / "message.json").read_text())
    payload.update(changes)
    return payload


def authorization(body: bytes, token: str = TOKEN) -> dict[str, str]:
    digest = hmac.new(base64.b64decode(token), body, hashlib.sha256).digest()
    return {"Authorization": "HMAC " + base64.b64encode(digest).decode(), "Content-Type": "application/json"}


def post(client: TestClient, payload: dict[str, Any] | bytes, channel: str = "teams") -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post(f"/webhooks/{channel}", content=body, headers=authorization(body))


@pytest.fixture
def team(loop: FeedbackLoop, monkeypatch: pytest.MonkeyPatch) -> FeedbackLoop:
    monkeypatch.setenv("TEAMS_TOKEN", TOKEN)
    with loop.session() as session:
        add_channel(loop, session, "teams", "teams", secret_env="TEAMS_TOKEN")
    return loop


def test_a_mention_is_stored_and_answered_in_the_reply_chain(client: TestClient, team: FeedbackLoop) -> None:
    response = post(client, (TEAMS_DATA / "message.json").read_bytes())
    assert response.status_code == 200
    assert response.json() == {"type": "message", "text": "Thanks, your feedback was recorded."}
    [item] = items(team)  # committed before Teams was answered
    assert item.text_original == "The invoice export drops the VAT number since Tuesday, @someone saw it too"
    assert item.external_id == "message-1485983408511"
    assert item.author_pseudonym == team.pseudonyms.author("7faf8ab2-3d56-4244-b585-20c8a42ed2b8")
    assert item.created_at.year == 2017
    metadata = item.metadata_json
    assert metadata["internal"] is True and "staff" not in metadata
    assert metadata["opens_thread"] is True and metadata["thread"].startswith("teams-")
    assert metadata["teams_tenant"] == "72f988bf-86f1-41af-91ab-2d7cd011db47"
    assert "Megan" not in json.dumps(metadata) and "Pranav" not in item.text_original


def test_a_reply_in_the_chain_shares_its_thread(client: TestClient, team: FeedbackLoop) -> None:
    post(client, activity())
    post(client, activity(id="1485983500000", text="<at>Feedback</at> same for credit notes"))
    first, reply = items(team)
    assert reply.metadata_json["thread"] == first.metadata_json["thread"]
    assert reply.metadata_json["opens_thread"] is False and reply.text_original == "same for credit notes"


def test_a_resent_activity_is_a_redelivery_not_an_edit(client: TestClient, team: FeedbackLoop) -> None:
    """Teams tells outgoing webhooks of no edits: the activity id, inside the signed body, marks a resend."""
    assert post(client, activity()).status_code == 200
    again = post(client, activity())
    assert again.status_code == 200 and again.json()["type"] == "message"
    changed = post(client, activity(text="<at>Feedback</at> something else"))
    assert changed.status_code == 200
    [item] = items(team)
    assert item.text_original.startswith("The invoice export")


def test_signature_failures_are_401(client: TestClient, team: FeedbackLoop, loop: FeedbackLoop) -> None:
    body = json.dumps(activity()).encode()
    assert client.post("/webhooks/teams", content=body).status_code == 401
    other = base64.b64encode(b"another token, another team....").decode()
    assert client.post("/webhooks/teams", content=body, headers=authorization(body, other)).status_code == 401
    assert client.post("/webhooks/teams", content=body + b" ", headers=authorization(body)).status_code == 401
    bearer = {"Authorization": authorization(body)["Authorization"].replace("HMAC ", "Bearer ")}
    assert client.post("/webhooks/teams", content=body, headers=bearer).status_code == 401
    with loop.session() as session:
        add_channel(loop, session, "unsigned", "teams")
    assert post(client, body, channel="unsigned").status_code == 401
    assert count_items(team) == 0


def test_a_token_that_is_not_base64_is_the_operators_503(client: TestClient, loop: FeedbackLoop,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAMS_BAD_TOKEN", "not base64!")
    with loop.session() as session:
        add_channel(loop, session, "misconfigured", "teams", secret_env="TEAMS_BAD_TOKEN")
    response = post(client, activity(), channel="misconfigured")
    assert response.status_code == 503 and "base64" in response.json()["detail"]


def test_unknown_channel_404_and_oversized_413(client: TestClient, team: FeedbackLoop) -> None:
    assert post(client, activity(), channel="nowhere").status_code == 404
    assert post(client, b"{" + b" " * MAX_WEBHOOK_BYTES + b"}").status_code == 413


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", json.dumps(activity(id=None)).encode(),
                                  json.dumps(activity(**{"from": {}})).encode()])
def test_unreadable_activities_are_400(client: TestClient, team: FeedbackLoop, body: bytes) -> None:
    response = post(client, body)
    assert response.status_code == 400 and response.json()["detail"]


def test_other_activities_and_channels_are_ignored(client: TestClient, team: FeedbackLoop) -> None:
    update = post(client, activity(type="conversationUpdate"))
    assert update.status_code == 202 and update.json()["status"] == "ignored"
    mention_only = post(client, activity(text="<at>Feedback</at>&nbsp;"))
    assert mention_only.status_code == 200 and "Mention me" in mention_only.json()["text"]
    with team.session() as session:
        add_channel(team, session, "one-channel", "teams", secret_env="TEAMS_TOKEN",
                    options={"channels": "19:other@thread.skype", "internal": "false"})
    elsewhere = post(client, activity(), channel="one-channel")
    assert elsewhere.status_code == 202 and elsewhere.json()["status"] == "ignored"
    assert count_items(team) == 0


def test_internal_can_be_switched_off_and_the_reply_chosen(client: TestClient, team: FeedbackLoop) -> None:
    with team.session() as session:
        add_channel(team, session, "partners", "teams", secret_env="TEAMS_TOKEN",
                    options={"internal": "false", "thanks_text": "Got it."})
    assert post(client, activity(), channel="partners").json()["text"] == "Got it."
    [item] = items(team)
    assert item.metadata_json["internal"] is False and "staff" not in item.metadata_json


def test_plain_text() -> None:
    assert plain_text("<at>Feedback</at> <p>Line&nbsp;one</p><p>line &amp; two</p>") == "Line one\nline & two"
    assert plain_text("<at>Feedback</at> <at>Bot</at>") == ""


def test_the_one_at_a_time_path_carries_the_answer_too(team: FeedbackLoop) -> None:
    """``receive_webhook`` (no server, no group commit) answers as the endpoint does, stored or redelivered."""
    body = json.dumps(activity()).encode()
    first = receive_webhook(team, "teams", authorization(body), body)
    again = receive_webhook(team, "teams", authorization(body), body)
    assert first.report is not None and first.report.created == 1 and again.redelivery
    assert first.answer == again.answer and first.answer is not None
    assert first.answer.body == {"type": "message", "text": "Thanks, your feedback was recorded."}
