"""The GitHub channel with the octokit example payloads (MIT, tests/data/github), signed with a test secret."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from fastapi.testclient import TestClient

from core.intake.channels import add_channel
from core.loop import FeedbackLoop
from tests.support.intake import GITHUB_DATA, GITHUB_SECRET, count_items, github_delivery, github_payload, items


@pytest.fixture
def repo(loop: FeedbackLoop, monkeypatch: pytest.MonkeyPatch) -> FeedbackLoop:
    monkeypatch.setenv("GH_SECRET", GITHUB_SECRET)
    with loop.session() as session:
        add_channel(loop, session, "gh", "github", secret_env="GH_SECRET")
    return loop


def test_published_signature_vector_verifies(client: TestClient, loop: FeedbackLoop,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    vector = json.loads((GITHUB_DATA / "signature_test_vector.json").read_text())
    digest = hmac.new(vector["secret"].encode(), vector["raw_body"].encode(), hashlib.sha256).hexdigest()
    assert "sha256=" + digest == vector["headers"]["X-Hub-Signature-256"]
    monkeypatch.setenv("VECTOR_SECRET", vector["secret"])
    with loop.session() as session:
        add_channel(loop, session, "vector", "github", secret_env="VECTOR_SECRET")
    headers = {**vector["headers"], "X-GitHub-Event": "ping", "X-GitHub-Delivery": "v-1"}
    response = client.post("/webhooks/vector", content=vector["raw_body"].encode(), headers=headers)
    assert response.status_code == 202 and response.json()["status"] == "ignored"  # signature passed


def test_issue_opened_is_stored(client: TestClient, repo: FeedbackLoop) -> None:
    body = github_payload("issues.opened.payload.json")
    response = client.post("/webhooks/gh", content=body, headers=github_delivery("issues", body, "d-1"))
    assert response.status_code == 202 and response.json()["created"] == 1
    [item] = items(repo)
    assert item.text_original == ("Spelling error in the README file\n\n"
                                  "It looks like you accidently spelled 'commit' with two 't's.")
    assert item.url == "https://github.com/Codertocat/Hello-World/issues/1"
    assert item.external_id == "issues-444500041"
    assert item.author_pseudonym == repo.pseudonyms.author("Codertocat")
    assert item.metadata_json["repository"] == "Codertocat/Hello-World"
    assert item.metadata_json["labels"] == ["bug"] and item.metadata_json["state"] == "open"
    assert item.metadata_json["number"] == 1


def test_empty_body_issue_keeps_its_title(client: TestClient, repo: FeedbackLoop) -> None:
    body = github_payload("issues.opened.with-empty-body.payload.json")
    client.post("/webhooks/gh", content=body, headers=github_delivery("issues", body, "d-2"))
    assert [item.text_original for item in items(repo)] == ["Spelling error in the README file"]


@pytest.mark.parametrize("event,name,text", [
    ("issue_comment", "issue_comment.created.payload.json", "You are totally right! I'll get this fixed right away."),
    ("discussion", "discussion.created.payload.json", "TEST edit\n\nTEST edit"),
    ("discussion_comment", "discussion_comment.created.payload.json", "ANSWER"),
])
def test_comments_and_discussions_are_stored(client: TestClient, repo: FeedbackLoop, event: str, name: str,
                                             text: str) -> None:
    body = github_payload(name)
    response = client.post("/webhooks/gh", content=body, headers=github_delivery(event, body, "d-3"))
    assert response.status_code == 202 and response.json()["created"] == 1
    [item] = items(repo)
    assert item.text_original == text and item.url and item.url.startswith("https://github.com/Codertocat/")


@pytest.mark.parametrize("event,name", [("ping", "ping.payload.json"), ("issues", "issues.labeled.payload.json")])
def test_unhandled_events_are_ignored(client: TestClient, repo: FeedbackLoop, event: str, name: str) -> None:
    body = github_payload(name)
    response = client.post("/webhooks/gh", content=body, headers=github_delivery(event, body, "d-4"))
    assert response.status_code == 202 and response.json()["status"] == "ignored"
    assert count_items(repo) == 0


def test_bots_are_skipped_and_members_optionally(client: TestClient, repo: FeedbackLoop) -> None:
    payload = json.loads(github_payload("issue_comment.created.payload.json"))
    payload["comment"]["user"].update(login="dependabot[bot]", type="Bot")
    body = json.dumps(payload).encode()
    response = client.post("/webhooks/gh", content=body, headers=github_delivery("issue_comment", body, "d-5"))
    assert response.json()["status"] == "ignored" and "bot" in response.json()["reason"]
    with repo.session() as session:
        add_channel(repo, session, "gh-customers", "github", secret_env="GH_SECRET",
                    options={"exclude_members": "true"})
    body = github_payload("issues.opened.payload.json")  # its author is the repository OWNER
    response = client.post("/webhooks/gh-customers", content=body, headers=github_delivery("issues", body, "d-6"))
    assert response.json()["status"] == "ignored" and count_items(repo) == 0


def test_edit_close_and_delete(client: TestClient, repo: FeedbackLoop) -> None:
    payload = json.loads(github_payload("issues.opened.payload.json"))
    body = json.dumps(payload).encode()
    client.post("/webhooks/gh", content=body, headers=github_delivery("issues", body, "e-1"))
    payload.update(action="edited")
    payload["issue"]["body"] = "The word 'commit' is misspelled in README.md"
    body = json.dumps(payload).encode()
    assert client.post("/webhooks/gh", content=body, headers=github_delivery("issues", body, "e-2")).json()["updated"]
    payload.update(action="closed")
    payload["issue"]["state"] = "closed"
    body = json.dumps(payload).encode()
    client.post("/webhooks/gh", content=body, headers=github_delivery("issues", body, "e-3"))
    [item] = items(repo)
    assert item.text_original.endswith("misspelled in README.md") and item.metadata_json["state"] == "closed"
    payload.update(action="deleted")
    body = json.dumps(payload).encode()
    assert client.post("/webhooks/gh", content=body, headers=github_delivery("issues", body, "e-4")).json()["deleted"]
    assert count_items(repo) == 0


def test_missing_event_header_is_400(client: TestClient, repo: FeedbackLoop) -> None:
    body = github_payload("issues.opened.payload.json")
    headers = github_delivery("issues", body, "d-7")
    del headers["X-GitHub-Event"]
    response = client.post("/webhooks/gh", content=body, headers=headers)
    assert response.status_code == 400 and "X-GitHub-Event" in response.json()["detail"]


def test_a_comment_body_relabelled_as_an_issue_event_deletes_nothing(client: TestClient, repo: FeedbackLoop) -> None:
    """The event header is not signed: a captured comment deletion sent as ``issues`` must not delete the issue."""
    body = github_payload("issues.opened.payload.json")
    client.post("/webhooks/gh", content=body, headers=github_delivery("issues", body, "r-1"))
    comment = json.loads(github_payload("issue_comment.created.payload.json"))
    comment.update(action="deleted")
    assert comment["issue"]["id"] == json.loads(body)["issue"]["id"]  # the same issue: this is the attack
    relabelled = json.dumps(comment).encode()
    response = client.post("/webhooks/gh", content=relabelled, headers=github_delivery("issues", relabelled, "r-2"))
    assert response.json()["status"] == "ignored" and count_items(repo) == 1
    issue = json.loads(body)
    stray = json.dumps({**issue, "action": "deleted"}).encode()  # an issue body sent as a comment event
    response = client.post("/webhooks/gh", content=stray, headers=github_delivery("issue_comment", stray, "r-3"))
    assert response.status_code in (202, 400) and count_items(repo) == 1
