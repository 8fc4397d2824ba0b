"""The Slack channel with payloads from Slack's documentation (tests/data/slack/SOURCE.md), signed as Slack signs."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from fastapi.testclient import TestClient
from slack_sdk.signature import Clock, SignatureVerifier

from core.errors import InvalidInput
from core.intake.channels import MAX_WEBHOOK_BYTES, add_channel
from core.loop import FeedbackLoop
from core.models import Theme, ThemeMembership
from core.themes.overview import overview
from core.themes.overview_filter import OverviewFilter, filter_from_query
from core.types import WebhookRejected, WebhookRequest
from plugins.slack import plain_text, thread_key, verify
from plugins.webhook_signing import sign_timestamped
from tests.support.intake import count_items, items

SLACK_DATA = Path(__file__).resolve().parent / "data" / "slack"
SECRET = "slack-test-signing-secret-0123"
MESSAGE_ID = "C123ABC456-1355517523.000005"
# The thread as stored: a key of the channel and the thread's first ts (redaction would eat the ts).
THREAD = "C123ABC456-" + thread_key("C123ABC456", "1355517523.000005")


def slack_body(name: str) -> bytes:
    return (SLACK_DATA / name).read_bytes()


def slack_json(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(slack_body(name))
    return payload


def signed(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Slack's headers for ``body``, computed here with hmac (not by the plugin or slack_sdk)."""
    moment = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), b"v0:" + moment.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": moment, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/json", "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}


def command_body(text: str, command: str = "/feedback") -> bytes:
    """Slack's documented slash-command payload, with our command and text."""
    fields = dict(parse_qsl(slack_body("slash_command.txt").decode(), keep_blank_values=True))
    fields.update(command=command, text=text)
    return urlencode(fields).encode()


def post(client: TestClient, body: bytes, channel: str = "slack", **extra: str) -> Any:
    return client.post(f"/webhooks/{channel}", content=body, headers={**signed(body), **extra})


@pytest.fixture
def workspace(loop: FeedbackLoop, monkeypatch: pytest.MonkeyPatch) -> FeedbackLoop:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    with loop.session() as session:
        add_channel(loop, session, "slack", "slack", secret_env="SLACK_SIGNING_SECRET")
    return loop


def test_published_signature_vector_verifies_and_is_too_old_to_replay(client: TestClient,
                                                                       workspace: FeedbackLoop) -> None:
    vector = json.loads(slack_body("signature_vector.json"))
    body = slack_body(vector["body_file"])

    class Then(Clock):
        def now(self) -> float:
            return float(vector["timestamp"]) + 60

    assert SignatureVerifier(vector["signing_secret"], clock=Then()).is_valid(
        body=body, timestamp=vector["timestamp"], signature=vector["signature"])
    headers = {"x-slack-signature": vector["signature"], "x-slack-request-timestamp": vector["timestamp"]}
    request = WebhookRequest("vector", headers, body, {}, vector["signing_secret"])
    verify(request, now=float(vector["timestamp"]) + 60)  # the plugin agrees at the time it was made
    with pytest.raises(WebhookRejected):
        verify(WebhookRequest("vector", headers, body + b"x", {}, vector["signing_secret"]),
               now=float(vector["timestamp"]) + 60)
    # Years later, through the endpoint: a captured request is refused, however well signed.
    response = client.post("/webhooks/slack", content=body, headers=headers)
    assert response.status_code == 401 and "tolerance" in response.json()["detail"]


def test_url_verification_is_answered_with_the_challenge_as_text(client: TestClient,
                                                                 workspace: FeedbackLoop) -> None:
    response = post(client, slack_body("url_verification.json"))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert response.text == "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    assert count_items(workspace) == 0


def test_message_is_stored_as_internal_feedback(client: TestClient, workspace: FeedbackLoop) -> None:
    response = post(client, slack_body("message.json"))
    assert response.status_code == 202 and response.json()["created"] == 1
    [item] = items(workspace)
    assert item.text_original == "Hello world" and item.external_id == MESSAGE_ID
    assert item.author_pseudonym == workspace.pseudonyms.author("U123ABC456")
    assert item.created_at.year == 2012
    metadata = item.metadata_json
    assert metadata["internal"] is True and "staff" not in metadata
    assert metadata["thread"] == THREAD and metadata["opens_thread"] is True
    assert metadata["slack_channel"] == "C123ABC456" and "U123ABC456" not in json.dumps(metadata)


def test_a_retry_is_a_redelivery_by_its_event_id(client: TestClient, workspace: FeedbackLoop) -> None:
    body = slack_body("message.json")
    assert post(client, body).json()["created"] == 1
    # Slack's retry: the same body, signed again at a later time, with X-Slack-Retry-Num.
    retry = client.post("/webhooks/slack", content=body, headers={
        **signed(body, timestamp=int(time.time()) + 2), "X-Slack-Retry-Num": "1",
        "X-Slack-Retry-Reason": "http_timeout"})
    assert retry.status_code == 202 and retry.json()["status"] == "redelivery"
    assert count_items(workspace) == 1


def test_edit_then_delete(client: TestClient, workspace: FeedbackLoop) -> None:
    post(client, slack_body("message.json"))
    edited = post(client, slack_body("message_changed.json"))
    assert edited.status_code == 202 and edited.json()["updated"] == 1
    [item] = items(workspace)
    assert item.text_original == "Hello, world!" and item.external_id == MESSAGE_ID
    deleted = post(client, slack_body("message_deleted.json"))
    assert deleted.status_code == 202 and deleted.json()["deleted"] == 1
    assert count_items(workspace) == 0
    late = post(client, json.dumps({**slack_json("message.json"), "event_id": "EvLate"}).encode())
    assert late.status_code == 202 and count_items(workspace) == 0  # a late copy does not bring it back


def test_a_parent_deleted_under_its_replies_becomes_a_tombstone_and_is_deleted(client: TestClient,
                                                                               workspace: FeedbackLoop) -> None:
    post(client, slack_body("message.json"))
    tombstone = slack_json("message_changed.json")
    tombstone["event"]["message"].update(subtype="tombstone", text="This message was deleted.", user="USLACKBOT")
    tombstone["event_id"] = "EvTomb"
    assert post(client, json.dumps(tombstone).encode()).json()["deleted"] == 1
    assert count_items(workspace) == 0


def test_a_thread_reply_names_its_thread(client: TestClient, workspace: FeedbackLoop) -> None:
    reply = slack_json("message.json")
    reply["event"].update(ts="1355517600.000100", thread_ts="1355517523.000005",
                          text="Same here: <@U999XYZ> saw it on <https://example.org/export|the export page> &amp; "
                               "in <#C777|billing>")
    reply["event_id"] = "EvReply"
    post(client, json.dumps(reply).encode())
    [item] = items(workspace)
    assert item.metadata_json["thread"] == THREAD and item.metadata_json["opens_thread"] is False
    assert item.text_original == "Same here: @someone saw it on the export page & in #billing"


@pytest.mark.parametrize("name,reason", [("bot_message.json", "bot"), ("channel_join.json", "channel_join")])
def test_bots_and_notices_are_ignored(client: TestClient, workspace: FeedbackLoop, name: str, reason: str) -> None:
    response = post(client, slack_body(name))
    assert response.status_code == 202 and response.json()["status"] == "ignored"
    assert reason in response.json()["reason"] and count_items(workspace) == 0


def test_other_events_and_other_channels_are_ignored(client: TestClient, workspace: FeedbackLoop,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    reaction = {**slack_json("message.json"), "event": {"type": "reaction_added", "user": "U1", "reaction": "+1"}}
    response = post(client, json.dumps(reaction).encode())
    assert response.status_code == 202 and response.json()["status"] == "ignored"
    with workspace.session() as session:
        add_channel(workspace, session, "support-only", "slack", secret_env="SLACK_SIGNING_SECRET",
                    options={"channels": "C999SUPPORT,C555"})
    response = post(client, slack_body("message.json"), channel="support-only")
    assert response.status_code == 202 and "C123ABC456" in response.json()["reason"]
    assert count_items(workspace) == 0


def test_signature_failures_are_401(client: TestClient, workspace: FeedbackLoop, loop: FeedbackLoop) -> None:
    body = slack_body("message.json")
    assert client.post("/webhooks/slack", content=body).status_code == 401
    assert client.post("/webhooks/slack", content=body, headers=signed(body, secret="another")).status_code == 401
    assert client.post("/webhooks/slack", content=body + b" ", headers=signed(body)).status_code == 401
    stale = client.post("/webhooks/slack", content=body, headers=signed(body, timestamp=int(time.time()) - 600))
    assert stale.status_code == 401 and "tolerance" in stale.json()["detail"]
    odd = {**signed(body), "X-Slack-Request-Timestamp": "soon"}
    assert client.post("/webhooks/slack", content=body, headers=odd).status_code == 401
    with loop.session() as session:
        add_channel(loop, session, "no-secret", "slack")
    assert post(client, body, channel="no-secret").status_code == 401
    assert count_items(workspace) == 0


def test_unknown_channel_404_and_oversized_413(client: TestClient, workspace: FeedbackLoop) -> None:
    assert post(client, slack_body("message.json"), channel="nowhere").status_code == 404
    assert post(client, b"{" + b" " * MAX_WEBHOOK_BYTES + b"}").status_code == 413


@pytest.mark.parametrize("body", [
    b"{not json",
    json.dumps({"type": "event_callback", "event": {"type": "message"}}).encode(),  # no event_id
    json.dumps({"type": "url_verification"}).encode(),  # no challenge
    b"team_id=T1&text=hello",  # a form without a command
    json.dumps({**json.loads((SLACK_DATA / "message.json").read_text()), "event": {
        "type": "message", "channel": "C123ABC456", "user": "U1", "text": "x", "ts": "yesterday"}}).encode(),
])
def test_unreadable_bodies_are_400(client: TestClient, workspace: FeedbackLoop, body: bytes) -> None:
    response = post(client, body)
    assert response.status_code == 400 and response.json()["detail"]


def test_feedback_command_is_stored_and_answered_ephemerally(client: TestClient, workspace: FeedbackLoop) -> None:
    body = command_body("The invoice export drops the VAT number")
    response = post(client, body, **{"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    assert response.json() == {"response_type": "ephemeral", "text": "Thanks, your feedback was recorded."}
    [item] = items(workspace)  # stored before the answer was sent
    assert item.text_original == "The invoice export drops the VAT number"
    assert item.external_id == "command-13345224609.738474920.8088930838d88f008e0"
    assert item.author_pseudonym == workspace.pseudonyms.author("U2147483697")
    assert item.metadata_json["internal"] is True and item.metadata_json["slack_channel"] == "C2147483705"
    stored = json.dumps(item.metadata_json)
    assert "Steve" not in stored and "hooks.slack.com" not in stored  # no user name, no response_url
    again = post(client, body)
    assert again.status_code == 200 and count_items(workspace) == 1  # a replayed trigger is a redelivery


def test_empty_and_foreign_commands_get_a_hint_and_store_nothing(client: TestClient, workspace: FeedbackLoop) -> None:
    empty = post(client, command_body("  "))
    assert empty.status_code == 200 and empty.json()["text"].startswith("Usage: /feedback")
    weather = post(client, slack_body("slash_command.txt"))  # Slack's own sample: /weather 94070
    assert weather.status_code == 200 and "/weather" in weather.json()["text"]
    assert count_items(workspace) == 0


def test_a_slack_connect_channel_can_be_marked_external(client: TestClient, workspace: FeedbackLoop) -> None:
    with workspace.session() as session:
        add_channel(workspace, session, "shared", "slack", secret_env="SLACK_SIGNING_SECRET",
                    options={"internal": "false", "commands": "/feedback,/idea", "thanks_text": "Noted!"})
    response = post(client, command_body("Bulk edit would save us hours", command="/idea"), channel="shared")
    assert response.json()["text"] == "Noted!"
    [item] = items(workspace)
    assert item.metadata_json["internal"] is False and "staff" not in item.metadata_json


def test_any_channel_can_mark_its_items_internal(client: TestClient, loop: FeedbackLoop,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "hook-secret")
    with loop.session() as session:
        add_channel(loop, session, "staff-survey", "webhook", secret_env="HOOK_SECRET", options={"internal": "true"})
    body = json.dumps({"id": "r-1", "text": "The onboarding checklist is out of date"}).encode()
    response = client.post("/webhooks/staff-survey", content=body,
                           headers={"X-Feedbackloop-Signature": sign_timestamped("hook-secret", body)})
    assert response.status_code == 202 and response.json()["created"] == 1
    assert items(loop)[0].metadata_json["internal"] is True


def test_plain_text_of_mrkdwn() -> None:
    assert plain_text("<!here> the <https://x.example|docs> &lt;3 <mailto:a@b.example>") == \
        "@here the docs <3 mailto:a@b.example"
    assert plain_text("  \n  ") == ""


def test_the_overview_shows_internal_external_or_both(client: TestClient, workspace: FeedbackLoop,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "hook-secret")
    with workspace.session() as session:
        add_channel(workspace, session, "survey", "webhook", secret_env="HOOK_SECRET")
    post(client, slack_body("message.json"))
    for index in range(2):
        body = json.dumps({"id": f"s-{index}", "text": f"Customers say the export is slow ({index})"}).encode()
        client.post("/webhooks/survey", content=body,
                    headers={"X-Feedbackloop-Signature": sign_timestamped("hook-secret", body)})
    with workspace.session() as session:
        theme = Theme(label="Export", keywords=["export"])
        session.add(theme)
        session.flush()
        session.add_all([ThemeMembership(item_id=item.id, theme_id=theme.id) for item in items(workspace)])
    volumes = {}
    with workspace.session() as session:
        for origin in (None, "internal", "external"):
            page = overview(session, OverviewFilter(origin=origin, window="all"))
            volumes[origin] = page.rows[0].volume if page.rows else 0
    assert volumes == {None: 3, "internal": 1, "external": 2}
    assert filter_from_query("origin=internal").origin == "internal"
    assert filter_from_query("origin=").origin is None
    assert "origin=external" in OverviewFilter(origin="external").to_query()
    with pytest.raises(InvalidInput):
        filter_from_query("origin=staff")


def test_the_overview_page_offers_the_origin_filter(admin: Any) -> None:
    page = admin.client().get("/?origin=internal")
    assert page.status_code == 200
    assert '<option value="internal" selected>' in page.text.replace("  ", " ")
    assert admin.client().get("/?origin=staff").status_code == 422  # InvalidInput, as for every filter
