"""Jira target: create, comment and read status on REST v3 (Cloud, ADF) and v2 (Server/Data Center),
every request checked against Atlassian's OpenAPI spec; Jira webhooks move the theme."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core import hookimpl
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import AuditEntry, Delivery, Theme
from core.routing.outbox import DeliveryPolicy, send_due
from core.routing.plan import route
from core.routing.tracker_status import poll_statuses
from core.themes.build import embed_pending, recluster
from core.types import ItemDraft
from tests.support.env import SHARED
from tests.support.jira_fake import FakeJira, adf_text
from tests.support.loops import make_loop, process_allows_test_destinations

WEBHOOKS = SHARED / "data" / "jira" / "webhooks"
NO_BACKOFF = DeliveryPolicy(backoff_base_s=0)
SEEDED = ["refund missing for my order please, mail me at jo{i}@example.com or call +44 20 7946 09{i:02d}",
          "refund missing for my order please, card 4111 1111 1111 1111 charged twice on day {i}"]


# Status polls read the process's settings (see the fixture).
pytestmark = pytest.mark.usefixtures(process_allows_test_destinations.__name__)


def jira_loop(tmp_path: Path, fake: FakeJira, api: str) -> FeedbackLoop:
    rules = tmp_path / "rules.toml"
    rules.write_text(f'[default]\nowner = "payments"\ntarget = "jira"\n'
                     f'target_options = {{ server = "{fake.url}", project = "PAY", api = "{api}", '
                     f'priority = "auto", labels = ["customer feedback"] }}\n')
    return make_loop(f"sqlite:///{tmp_path / 'jira.db'}", rules_file=rules)


def add(loop: FeedbackLoop, texts: list[str]) -> None:
    with loop.session() as session:
        ingest(loop, session, [ItemDraft(text=text) for text in texts])
        embed_pending(loop, session)
        recluster(loop, session)


def theme_volume(loop: FeedbackLoop) -> int:
    with loop.session() as session:
        return len(session.scalars(select(Theme)).one().memberships)


@pytest.mark.parametrize("api", ["3", "2"])
def test_create_comment_and_status_validate_against_the_spec(tmp_path: Path, api: str) -> None:
    with FakeJira(cloud=api == "3") as fake:
        loop = jira_loop(tmp_path, fake, api)
        add(loop, [SEEDED[i % 2].format(i=i) for i in range(8)])
        assert route(loop, NO_BACKOFF).sent == 1
        (issue,) = fake.issues.values()
        fields = issue["fields"]
        description = adf_text(fields["description"]) if api == "3" else fields["description"]
        assert isinstance(fields["description"], dict if api == "3" else str)
        volume = theme_volume(loop)
        assert fields["summary"].startswith("[feedbackloop] ") and f"({volume} items)" in fields["summary"]
        assert f"Volume: {volume} items" in description and "/themes/" in description
        assert {"feedbackloop", "customer-feedback"} <= set(fields["labels"])
        assert fields["priority"] == {"name": "Medium"} and fields["issuetype"] == {"name": "Task"}
        # Tickets never carry seeded personal data.
        everything = json.dumps(fields)
        assert "example.com" not in everything and "20 7946" not in everything and "4111 1111" not in everything

        add(loop, [SEEDED[0].format(i=i) for i in range(8, 11)])
        assert send_due(loop, NO_BACKOFF).updated == 1
        assert len(issue["comments"]) == 1
        comment = adf_text(issue["comments"][0]["body"]) if api == "3" else issue["comments"][0]["body"]
        assert theme_volume(loop) > volume
        assert f"grew to {theme_volume(loop)} items" in comment and "@example.com" not in comment

        fake.set_status(issue["key"], "In Progress", "indeterminate")
        assert poll_statuses(loop, min_interval_s=0) == 1
        with loop.session() as session:
            theme = session.scalars(select(Theme)).one()
            assert theme.status == "in_progress"
            assert session.scalars(select(Delivery)).one().external_status == "In Progress"
        prefix = f"/rest/api/{api}/"
        assert fake.requests and all(path.startswith(prefix) for _, path in fake.requests)
        assert {("POST", f"{prefix}issue"), ("POST", f"{prefix}issue/{issue['key']}/comment"),
                ("GET", f"{prefix}issue/{issue['key']}")} <= set(fake.requests)
        assert fake.violations == []


def test_a_retry_after_a_lost_answer_finds_the_issue_instead_of_creating_another(tmp_path: Path) -> None:
    with FakeJira(cloud=True) as fake:
        loop = jira_loop(tmp_path, fake, "3")
        add(loop, [SEEDED[0].format(i=i) for i in range(6)])
        route(loop, NO_BACKOFF)
        with loop.session() as session:  # as if the worker died after Jira answered, before the commit
            delivery = session.scalars(select(Delivery)).one()
            delivery.state, delivery.external_ref, delivery.delivered_volume = "pending", None, 0
        assert send_due(loop, NO_BACKOFF).sent == 1
        assert len(fake.issues) == 1 and fake.issues["PAY-1"]["comments"] == []  # found, and still current
        with loop.session() as session:
            assert session.scalars(select(Delivery)).one().external_ref == "PAY-1"
        assert fake.violations == []


def test_the_spec_check_catches_a_malformed_request() -> None:
    from tests.support.jira_fake import SpecValidator, load_spec

    validator = SpecValidator(load_spec())
    assert validator.check_request("POST", "/rest/api/3/issue", {}, {"fields": {"description": "plain"}})
    assert validator.check_request("GET", "/rest/api/3/search/jql", {"jql": ["x"], "bogus": ["1"]}, None)
    assert validator.check_request("PATCH", "/rest/api/3/issue/PAY-1", {}, {})
    assert validator.check_request("POST", "/rest/api/3/issue/PAY-1/comment", {}, {"body": {"type": "doc"}})
    assert not validator.check_request("GET", "/rest/api/2/issue/PAY-1", {"fields": ["status"]}, None)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_jira_webhook_moves_the_theme_with_an_audit_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDBACKLOOP_JIRA_WEBHOOK_SECRET", "s3cret")
    loop = make_loop(f"sqlite:///{tmp_path / 'hook.db'}")
    add(loop, [SEEDED[0].format(i=i) for i in range(6)])
    with loop.session() as session:
        theme = session.scalars(select(Theme)).one()
        session.add(Delivery(theme_id=theme.id, target_type="jira", idempotency_key="k", state="sent",
                             external_ref="TEST-11", options={}))
    seen: list[tuple[str, str]] = []

    class Listener:
        @hookimpl
        def theme_status_changed(self, theme: object, old_status: str, new_status: str) -> None:
            seen.append((old_status, new_status))

    loop.pm.register(Listener())
    done = (WEBHOOKS / "issue_updated_status_updated.json").read_bytes()
    with TestClient(create_app(loop.settings, loop=loop)) as client:
        assert client.post("/trackers/jira/webhook", content=done).status_code == 401
        assert client.post("/trackers/jira/webhook", content=done,
                           headers={"X-Hub-Signature": sign("wrong", done)}).status_code == 401
        response = client.post("/trackers/jira/webhook", content=done,
                               headers={"X-Hub-Signature": sign("s3cret", done)})
        assert response.status_code == 200, response.text
        assert response.json()["theme_status"] == "done" and response.json()["changed"] is True
        other = (WEBHOOKS / "issue_updated_fields_updated.json").read_bytes()  # still "To Do": no change
        response = client.post("/trackers/jira/webhook", content=other,
                               headers={"X-Hub-Signature": sign("s3cret", other)})
        assert response.status_code == 200 and response.json()["theme_status"] == "done"
        created = (WEBHOOKS / "issue_created.json").read_bytes()
        response = client.post("/trackers/jira/webhook", content=created,
                               headers={"X-Hub-Signature": sign("s3cret", created)})
        assert response.status_code == 202 and response.json()["status"] == "ignored"
        bad = b'{"webhookEvent": "jira:issue_updated", "issue": {}}'
        response = client.post("/trackers/jira/webhook", content=bad, headers={"X-Hub-Signature": sign("s3cret", bad)})
        assert response.status_code == 400 and "issue.key" in response.json()["detail"]
    assert seen == [("new", "done")]
    with loop.session() as session:
        actions = [(entry.actor, entry.action) for entry in session.scalars(select(AuditEntry))]
    assert ("tracker:jira", "set_status") in actions and ("tracker:jira", "tracker_status") in actions
