"""The HTTP API: keys, validation with clear messages, listing, themes and webhook dispatch."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from core.intake.channels import add_channel
from core.loop import FeedbackLoop
from core.themes.build import embed_pending, recluster
from plugins.generic_webhook import sign
from tests.support.workspace import sign_in


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_openapi_lists_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/healthz", "/api/v1/feedback", "/api/v1/themes", "/api/v1/themes/{theme_id}",
                 "/webhooks/{channel}"):
        assert path in paths


def test_feedback_without_a_key_is_401(client: TestClient) -> None:
    response = client.post("/api/v1/feedback", json={"text": "hello"})
    assert response.status_code == 401
    assert "API key" in response.json()["detail"]
    assert client.get("/api/v1/feedback").status_code == 401
    assert client.get("/api/v1/themes").status_code == 401


def test_wrong_key_is_401(client: TestClient) -> None:
    response = client.post("/api/v1/feedback", json={"text": "x"}, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


def test_stored_key_works_and_revoked_does_not(client: TestClient, loop: FeedbackLoop) -> None:
    from core.auth.api_keys import create_api_key
    from core.models import ApiKey

    with loop.session() as session:
        key = create_api_key(session, "ci", ["intake"])
    headers = {"Authorization": f"Bearer {key}"}
    assert client.post("/api/v1/feedback", json={"text": "works"}, headers=headers).status_code == 201
    with loop.session() as session:
        for row in session.query(ApiKey):
            row.revoked = True
    assert client.post("/api/v1/feedback", json={"text": "no"}, headers=headers).status_code == 401


def test_malformed_body_is_422_with_a_message(client: TestClient, auth: dict[str, str]) -> None:
    missing = client.post("/api/v1/feedback", json={"author": "x"}, headers=auth)
    assert missing.status_code == 422
    assert "text" in json.dumps(missing.json()["detail"])
    empty = client.post("/api/v1/feedback", json={"text": ""}, headers=auth)
    assert empty.status_code == 422
    assert "at least 1 character" in json.dumps(empty.json()["detail"])
    not_json = client.post("/api/v1/feedback", content=b"{nope", headers={**auth, "Content-Type": "application/json"})
    assert not_json.status_code == 422
    assert "JSON" in json.dumps(not_json.json()["detail"])
    bad_date = client.post("/api/v1/feedback", json={"text": "a", "created_at": "yesterday"}, headers=auth)
    assert bad_date.status_code == 422
    assert client.get("/api/v1/feedback", headers=auth).json()["total"] == 0  # nothing stored


def test_one_item_then_a_batch_and_redelivery(client: TestClient, auth: dict[str, str]) -> None:
    one = client.post("/api/v1/feedback", json={"text": "Export to CSV please", "external_id": "t-1"}, headers=auth)
    assert one.status_code == 201 and one.json()["created"] == 1
    batch = {"items": [{"text": "Export to CSV please", "external_id": "t-1"},
                       {"text": "Dark mode would be nice", "channel": "survey", "metadata": {"tier": "gold"}}]}
    again = client.post("/api/v1/feedback", json=batch, headers=auth).json()
    assert (again["created"], again["duplicates"]) == (1, 1)
    page = client.get("/api/v1/feedback", headers=auth).json()
    assert page["total"] == 2
    survey = client.get("/api/v1/feedback", params={"channel": "survey"}, headers=auth).json()
    assert survey["total"] == 1 and survey["items"][0]["metadata"] == {"tier": "gold"}
    assert survey["items"][0]["kind"] == "idea"


def test_pagination_and_filters(client: TestClient, auth: dict[str, str]) -> None:
    items = [{"text": f"Item number {i} is broken", "external_id": str(i)} for i in range(12)]
    client.post("/api/v1/feedback", json={"items": items}, headers=auth)
    first = client.get("/api/v1/feedback", params={"limit": 5}, headers=auth).json()
    second = client.get("/api/v1/feedback", params={"limit": 5, "offset": 5}, headers=auth).json()
    assert first["total"] == 12 and len(first["items"]) == 5 and len(second["items"]) == 5
    assert not {i["id"] for i in first["items"]} & {i["id"] for i in second["items"]}
    assert client.get("/api/v1/feedback", params={"q": "number 7"}, headers=auth).json()["total"] == 1
    assert client.get("/api/v1/feedback", params={"limit": 0}, headers=auth).status_code == 422
    assert client.get("/api/v1/feedback", params={"kind": "rant"}, headers=auth).status_code == 422


def seed_themes(client: TestClient, auth: dict[str, str], loop: FeedbackLoop) -> None:
    texts = [f"card delivery late again {i}" for i in range(8)] + [f"app login password reset {i}" for i in range(8)]
    client.post("/api/v1/feedback", json={"items": [{"text": t} for t in texts]}, headers=auth)
    with loop.session() as session:
        embed_pending(loop, session)
        recluster(loop, session)


def test_themes_list_and_detail(client: TestClient, auth: dict[str, str], loop: FeedbackLoop) -> None:
    seed_themes(client, auth, loop)
    themes = client.get("/api/v1/themes", headers=auth).json()
    assert len(themes) == 2
    assert {t["volume"] for t in themes} == {8}
    assert abs(sum(t["share_of_voice"] for t in themes) - 1.0) < 1e-9
    assert all("mean_sentiment" in t and "owner" in t for t in themes)
    detail = client.get(f"/api/v1/themes/{themes[0]['id']}", headers=auth).json()
    assert len(detail["items"]) == 8 and all(i["theme_id"] == themes[0]["id"] for i in detail["items"])
    assert client.get("/api/v1/themes/9999", headers=auth).status_code == 404


def test_theme_update_rename_status_owner(client: TestClient, auth: dict[str, str], loop: FeedbackLoop) -> None:
    seed_themes(client, auth, loop)
    theme_id = client.get("/api/v1/themes", headers=auth).json()[0]["id"]
    updated = client.patch(f"/api/v1/themes/{theme_id}", json={"label": "Late cards", "status": "planned",
                                                                 "owner": "cards"}, headers=auth).json()
    assert (updated["label"], updated["status"], updated["owner"]) == ("Late cards", "planned", "cards")
    bad = client.patch(f"/api/v1/themes/{theme_id}", json={"status": "whenever"}, headers=auth)
    assert bad.status_code == 422 and "whenever" in bad.json()["detail"]
    with loop.session() as session:  # the name a person gave survives re-clustering
        recluster(loop, session)
    assert client.get(f"/api/v1/themes/{theme_id}", headers=auth).json()["label"] == "Late cards"


def test_webhook_dispatches_to_the_channel_plugin(client: TestClient, loop: FeedbackLoop, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FORM_SECRET", "s3cret")
    with loop.session() as session:
        add_channel(loop, session, "form", "webhook", secret_env="FORM_SECRET",
                    options={"text_field": "answer.text", "id_field": "answer.id"})
    body = json.dumps({"answer": {"id": "a1", "text": "Please add Apple Pay"}}).encode()
    headers = {"X-Feedbackloop-Signature": sign("s3cret", body), "Content-Type": "application/json"}
    accepted = client.post("/webhooks/form", content=body, headers=headers)
    assert accepted.status_code == 202 and accepted.json()["created"] == 1
    assert client.post("/webhooks/form", content=body, headers=headers).json()["duplicates"] == 1
    forged = client.post("/webhooks/form", content=body, headers={"X-Feedbackloop-Signature": "sha256=00"})
    assert forged.status_code == 401
    assert client.post("/webhooks/nowhere", content=body, headers=headers).status_code == 404
    huge = b"{" + b" " * (1024 * 1024) + b"}"
    assert client.post("/webhooks/form", content=huge, headers=headers).status_code == 413
    signed_hello = {"X-Feedbackloop-Signature": sign("s3cret", b"hello")}
    not_json = client.post("/webhooks/form", content=b"hello", headers=signed_hello)
    assert not_json.status_code == 400 and "JSON" in not_json.json()["detail"]
    with loop.session() as session:
        from core.models import FeedbackItem

        assert session.query(FeedbackItem).count() == 1


def test_workspace_lists_themes(client: TestClient, auth: dict[str, str], loop: FeedbackLoop) -> None:
    seed_themes(client, auth, loop)
    sign_in(client, loop)
    page = client.get("/")
    assert page.status_code == 200
    assert page.text.count('class="theme-row"') == 2
    theme_id = client.get("/api/v1/themes", headers=auth).json()[0]["id"]
    assert "Representative quotes" in client.get(f"/themes/{theme_id}").text
    assert client.get("/inbox").status_code == 200
