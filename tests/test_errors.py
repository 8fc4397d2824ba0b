"""One error model: every domain error answers in one JSON shape from one handler, and exits 2 on the CLI."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from core.cli.app import app as cli_app
from core.errors import Conflict, FeedbackloopError, NotFound
from core.intake.channels import ChannelError
from core.intake.ingest import InvalidItem
from core.routing.rules import RulesError
from core.themes.review import ReviewError
from core.types import WebhookRejected


@pytest.mark.parametrize(("error", "status", "code"), [
    (NotFound("no theme with id 7"), 404, "not_found"),
    (Conflict("already there"), 409, "conflict"),
    (InvalidItem("item 0: text must be a non-empty string"), 422, "invalid_item"),
    (ReviewError("a theme cannot be merged into itself"), 422, "review_error"),
    (RulesError("rules line 3: 'owner' is required"), 422, "rules_error"),
    (ChannelError("channel 'x' already exists", status_code=409), 409, "channel_error"),
    (WebhookRejected(401, "missing X-Hub-Signature-256 header"), 401, "webhook_rejected"),
])
def test_every_domain_error_carries_its_status_and_code(error: FeedbackloopError, status: int, code: str) -> None:
    assert isinstance(error, FeedbackloopError)
    assert (error.status_code, error.code, error.message) == (status, code, str(error))


def test_api_errors_have_one_shape(client: TestClient, auth: dict[str, str]) -> None:
    missing = client.get("/api/v1/themes/999", headers=auth)
    assert missing.status_code == 404 and missing.json() == {"error": "not_found", "detail": "no theme with id 999"}
    no_key = client.get("/api/v1/themes")
    assert no_key.status_code == 401 and no_key.json()["error"] == "unauthorized"
    assert no_key.headers["www-authenticate"] == "Bearer"
    no_route = client.get("/api/v1/nothing-here", headers=auth)
    assert no_route.status_code == 404 and set(no_route.json()) == {"error", "detail"}
    conflict = client.post("/api/v1/deliveries/1/retry", headers=auth)
    assert conflict.status_code == 404 and conflict.json()["error"] == "delivery_error"


def test_a_validation_error_says_what_is_wrong_without_echoing_the_input(client: TestClient,
                                                                        auth: dict[str, str]) -> None:
    huge = "x" * 100_000
    response = client.post("/api/v1/feedback", headers=auth, json={"text": huge, "color": "red"})
    body = response.json()
    assert response.status_code == 422 and body["error"] == "invalid_request"
    assert "text" in body["detail"] and isinstance(body["errors"], list)
    assert huge[:1000] not in response.text and len(response.content) < 5_000


def test_the_cli_turns_domain_errors_into_one_line_and_exit_code_2(cli_env: str) -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app, ["channels", "remove", "nope"])
    assert result.exit_code == 2 and "error:" in result.output and "no channel named 'nope'" in result.output
    assert "Traceback" not in result.output
