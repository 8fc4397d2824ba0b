"""Channel instances through the CLI and the admin API, with secrets read from the environment."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from core.auth.api_keys import create_api_key
from core.cli.app import app
from core.loop import FeedbackLoop
from plugins.generic_webhook import sign
from tests.support.intake import count_items, items

runner = CliRunner()


def test_cli_add_list_remove(cli_env: str) -> None:
    added = runner.invoke(app, ["channels", "add", "forum", "--plugin", "discourse", "--secret-env",
                                "FEEDBACKLOOP_SECRET_FORUM", "--option", "exclude_staff=true"])
    assert added.exit_code == 0, added.output
    assert "/webhooks/forum" in added.output
    listed = runner.invoke(app, ["channels", "list"])
    assert "forum" in listed.output and "discourse" in listed.output
    assert runner.invoke(app, ["channels", "remove", "forum"]).exit_code == 0
    assert "forum" not in runner.invoke(app, ["channels", "list"]).output


@pytest.mark.parametrize("args,message", [
    (["channels", "add", "x", "--plugin", "nosuch"], "nosuch"),
    (["channels", "add", "Bad Name", "--plugin", "webhook"], "lower-case"),
    (["channels", "add", "x", "--plugin", "webhook", "--secret-env", "not a var"], "environment variable"),
    (["channels", "add", "x", "--plugin", "webhook", "--option", "novalue"], "KEY=VALUE"),
    (["channels", "add", "x", "--plugin", "webhook", "--option", "impact_file=/nonexistent.csv"], "impact file"),
    (["channels", "remove", "ghost"], "ghost"),
    # A mistyped option would be ignored without a word: the type's declared options are the only ones taken.
    (["channels", "add", "x", "--plugin", "discourse", "--option", "exclude_staf=true"], "no option 'exclude_staf'"),
    (["channels", "add", "x", "--plugin", "discourse", "--option", "decline_weeks=1"], "decline_weeks"),
])
def test_cli_bad_input_exits_2(cli_env: str, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.output


def test_admin_api(client: TestClient, auth: dict[str, str], loop: FeedbackLoop,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORM_SECRET", "form-secret-1234")
    created = client.post("/api/v1/channels", headers=auth, json={
        "name": "form", "plugin": "webhook", "secret_env": "FORM_SECRET", "options": {"text_field": "answer"}})
    assert created.status_code == 201, created.text
    assert created.json()["webhook_url"].endswith("/webhooks/form") and "secret" not in created.json()["options"]
    assert client.post("/api/v1/channels", headers=auth, json={"name": "form", "plugin": "webhook"}).status_code == 409
    bad = client.post("/api/v1/channels", headers=auth, json={"name": "x", "plugin": "nosuch"})
    assert bad.status_code == 400 and "nosuch" in bad.json()["detail"]
    assert client.post("/api/v1/channels", headers=auth, json={"plugin": "webhook"}).status_code == 422
    typo = client.post("/api/v1/channels", headers=auth, json={"name": "x", "plugin": "webhook",
                                                               "options": {"text_feild": "answer"}})
    assert typo.status_code == 400 and "text_feild" in typo.json()["detail"]
    assert [c["name"] for c in client.get("/api/v1/channels", headers=auth).json()] == ["form"]
    body = json.dumps({"answer": "Checkout button is hidden on mobile"}).encode()
    delivered = client.post("/webhooks/form", content=body, headers={"X-Feedbackloop-Signature":
                                                                     sign("form-secret-1234", body)})
    assert delivered.status_code == 202 and count_items(loop) == 1
    assert client.delete("/api/v1/channels/form", headers=auth).status_code == 204
    assert client.delete("/api/v1/channels/form", headers=auth).status_code == 404
    assert client.post("/webhooks/form", content=body).status_code == 404
    assert [item.text_original for item in items(loop)] == ["Checkout button is hidden on mobile"]  # items stay


def test_admin_api_needs_an_admin_key(client: TestClient, loop: FeedbackLoop) -> None:
    assert client.get("/api/v1/channels").status_code == 401
    with loop.session() as session:
        key = create_api_key(session, "reader", ["pm", "intake"])
    response = client.get("/api/v1/channels", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 403


def test_every_channel_takes_the_decline_alert_options(cli_env: str) -> None:
    added = runner.invoke(app, ["channels", "add", "forum", "--plugin", "discourse", "--option", "owner=community",
                                "--option", "decline_weeks=4"])
    assert added.exit_code == 0, added.output


def test_cli_lists_channel_types_and_a_types_options_within_80_columns(cli_env: str) -> None:
    listing = runner.invoke(app, ["channels", "types"], env={"COLUMNS": "80"})
    assert listing.exit_code == 0, listing.output
    assert all(name in listing.output for name in ("discourse", "slack", "feed", "reddit", "zendesk"))
    assert "polled" in listing.output and max(map(len, listing.output.splitlines())) <= 80
    options = runner.invoke(app, ["channels", "types", "discourse"], env={"COLUMNS": "80"})
    assert options.exit_code == 0 and "exclude_staff" in options.output and "tier_field" in options.output
    assert max(map(len, options.output.splitlines())) <= 80
    unknown = runner.invoke(app, ["channels", "types", "nosuch"])
    assert unknown.exit_code == 2 and "nosuch" in unknown.output
