"""The admin pages (api/pages/admin*.py), the people's side: users, API keys and the audit log, each change
stored and audited under the signed-in person, and no change without the form's CSRF token."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.audit import record
from core.models import ApiKey, AuditEntry, Channel, Setting, Theme, User, WebSession
from core.routing.replies import DEFAULT_TEMPLATE, TEMPLATE_SETTING
from tests.support.admin_pages import (
    ADMIN,
    EDITED_RULES,
    PM,
    Admin,
    csrf,
    field,
    make_admin,
    text_of,
)
from tests.support.workspace_browser import PASSWORD, PEOPLE, RULES


def test_rules_file_missing_or_not_configured(admin: Admin, tmp_path: Path) -> None:
    admin.rules.unlink()
    client = admin.client()
    assert "The file does not exist yet: saving creates it." in client.get("/admin/rules").text
    preview = client.post("/admin/rules/preview", data={"csrf_token": csrf(client), "source": EDITED_RULES})
    assert preview.status_code == 200 and "Who gets them now is unknown" in preview.text
    assert not admin.rules.exists()
    answer = client.post("/admin/rules", follow_redirects=False, data={
        "csrf_token": csrf(client), "source": EDITED_RULES, "previewed": field(preview.text, "previewed"),
        "file_sha": field(preview.text, "file_sha")})
    assert answer.status_code == 303 and admin.rules.read_text() == EDITED_RULES
    unset = make_admin(tmp_path / "unset", rules_file=False)
    try:
        other = unset.client()
        page = other.get("/admin/rules")
        assert page.status_code == 200 and "No rules file configured" in page.text and "<textarea" not in page.text
        refused = other.post("/admin/rules/preview", data={"csrf_token": csrf(other), "source": EDITED_RULES})
        assert refused.status_code == 409 and "FEEDBACKLOOP_RULES_FILE" in refused.text
    finally:
        unset.loop.close()


def test_users_add_change_deactivate_sign_out(any_admin: Admin) -> None:
    admin = any_admin
    client = admin.client()
    token = csrf(client, "/admin/users")
    answer = client.post("/admin/users", follow_redirects=False, data={
        "csrf_token": token, "email": "Olga@Example.test", "name": "Olga", "role": "owner", "team": "payments",
        "password": PASSWORD})
    assert answer.status_code == 303
    olga = admin.user("olga@example.test")
    assert olga.role == "owner" and olga.owner_id is not None and olga.password_hash
    [added] = admin.audit("add_user")
    assert added.actor == f"user:{ADMIN}" and added.details["role"] == "owner"
    assert "olga@example.test" in client.get("/admin/users").text
    # A role change: a confirm page, then the change.
    confirm = client.get(f"/admin/users/{olga.id}/confirm", params={"change": "update", "role": "pm",
                                                                    "team": ""})
    assert confirm.status_code == 200
    assert "Role: owner → pm" in text_of(confirm.text) and "Team: payments → none" in text_of(confirm.text)
    assert admin.user("olga@example.test").role == "owner"
    answer = client.post(f"/admin/users/{olga.id}", follow_redirects=False, data={
        "csrf_token": token, "change": "update", "role": "pm", "team": ""})
    assert answer.status_code == 303
    assert admin.user("olga@example.test").role == "pm" and admin.user("olga@example.test").owner_id is None
    assert admin.audit("update_user")[-1].details == {"role": "pm", "team": ""}
    # Deactivating ends the person's sessions at once.
    olga_browser = admin.client("olga@example.test")
    assert olga_browser.get("/", follow_redirects=False).status_code == 200
    assert "1 open sessions end now" in text_of(client.get(f"/admin/users/{olga.id}/confirm",
                                                            params={"change": "deactivate"}).text)
    client.post(f"/admin/users/{olga.id}", data={"csrf_token": token, "change": "deactivate"})
    assert admin.user("olga@example.test").active is False
    assert olga_browser.get("/", follow_redirects=False).status_code == 303
    assert admin.audit("update_user")[-1].details == {"active": False, "sessions_ended": 1}
    client.post(f"/admin/users/{olga.id}", data={"csrf_token": token, "change": "reactivate"})
    assert admin.user("olga@example.test").active is True
    # Sign out everywhere.
    second = admin.client("olga@example.test")
    client.post(f"/admin/users/{olga.id}", data={"csrf_token": token, "change": "sign_out"})
    assert second.get("/", follow_redirects=False).status_code == 303
    assert admin.audit("sign_out_user")[-1].details == {"sessions_ended": 1}
    assert admin.count(select(WebSession).where(WebSession.user_id == olga.id,
                                                WebSession.revoked_at.is_(None))) == 0


@pytest.mark.parametrize(("form", "status", "message"), [
    ({"email": "new@example.test", "role": "pm", "password": "short"}, 422, "at least 12 characters"),
    ({"email": "not an address", "role": "pm"}, 422, "is not an e-mail address"),
    ({"email": "new@example.test", "role": "boss"}, 422, "role 'boss' is not one of"),
    ({"email": PM, "role": "pm"}, 409, "already exists"),
])
def test_refused_accounts_rerendered(admin: Admin, form: dict[str, str], status: int, message: str) -> None:
    client = admin.client()
    users_before = admin.count(select(User))
    answer = client.post("/admin/users", data={"csrf_token": csrf(client, "/admin/users"), **form})
    assert answer.status_code == status and message in text_of(answer.text)
    assert "Add an account" in answer.text and admin.count(select(User)) == users_before
    assert admin.audit("add_user") == []


def test_last_admin_cannot_be_demoted_or_deactivated(admin: Admin) -> None:
    client = admin.client()
    token = csrf(client, "/admin/users")
    me = admin.user(ADMIN)
    confirm = client.get(f"/admin/users/{me.id}/confirm", params={"change": "update", "role": "viewer",
                                                                  "team": ""})
    assert "This is your own account" in confirm.text
    for change in ({"change": "update", "role": "viewer", "team": ""}, {"change": "deactivate"}):
        answer = client.post(f"/admin/users/{me.id}", data={"csrf_token": token, **change})
        assert answer.status_code == 409 and "last admin" in answer.text
    assert admin.user(ADMIN).role == "admin" and admin.user(ADMIN).active
    assert admin.audit("update_user") == []
    nothing = client.post(f"/admin/users/{me.id}", data={"csrf_token": token, "change": "update",
                                                         "role": "admin", "team": ""})
    assert nothing.status_code == 422 and "nothing to change" in nothing.text


def test_reply_template_preview_then_save(admin: Admin) -> None:
    client = admin.client()
    theme_id = admin.themes["export"]
    template = "Hello! We marked $theme $status: $link"
    preview = client.post("/admin/reply-template/preview", data={
        "csrf_token": csrf(client), "template": template, "theme": str(theme_id), "status": "declined"})
    assert preview.status_code == 200
    with admin.loop.session() as session:
        label = session.get(Theme, theme_id).label  # type: ignore[union-attr]
        assert session.get(Setting, TEMPLATE_SETTING) is None
    assert f"Hello! We marked {label} as declined: http://127.0.0.1:8000/themes/{theme_id}" in text_of(preview.text)
    assert admin.audit("set_reply_template") == []
    changed = client.post("/admin/reply-template", data={
        "csrf_token": csrf(client), "template": template + " Thanks.", "theme": str(theme_id), "status": "done",
        "previewed": field(preview.text, "previewed")})
    assert changed.status_code == 200 and "changed after its preview" in changed.text
    answer = client.post("/admin/reply-template", follow_redirects=False, data={
        "csrf_token": csrf(client), "template": template, "theme": str(theme_id), "status": "done",
        "previewed": field(preview.text, "previewed")})
    assert answer.status_code == 303
    with admin.loop.session() as session:
        assert session.get(Setting, TEMPLATE_SETTING).value == template  # type: ignore[union-attr]
    [entry] = admin.audit("set_reply_template")
    assert entry.actor == f"user:{ADMIN}" and entry.details == {"from": None, "to": template}
    for bad, message in (("Hi $name", "may use only $theme, $status and $link"), ("   ", "must not be empty"),
                         ("x" * 5001, "at most 5000 characters")):
        for path in ("/admin/reply-template/preview", "/admin/reply-template"):
            refused = client.post(path, data={"csrf_token": csrf(client), "template": bad, "theme": str(theme_id),
                                              "previewed": hashlib.sha256(bad.encode()).hexdigest()})
            assert refused.status_code == 422 and message in text_of(refused.text), (path, bad[:10])
    with admin.loop.session() as session:
        assert session.get(Setting, TEMPLATE_SETTING).value == template  # type: ignore[union-attr]
    assert DEFAULT_TEMPLATE not in client.get("/admin/reply-template").text.split("</textarea>")[0]


def test_audit_filters_and_pages(any_admin: Admin) -> None:
    admin = any_admin
    now = datetime.now(UTC)
    with admin.loop.session() as session:
        for number in range(60):
            entry = record(session, f"user:bulk{number % 3}@example.test", "bulk_action", "widget", number)
            entry.at = now - timedelta(days=number)
    client = admin.client()
    page = client.get("/admin/audit", params={"action": "bulk_action"})
    assert page.status_code == 200 and "60 entries" in page.text and "Page 1 of 2" in page.text
    assert page.text.count("<td>bulk_action") == 50
    second = client.get("/admin/audit", params={"action": "bulk_action", "page": 2})
    assert second.text.count("<td>bulk_action") == 10 and 'rel="prev"' in second.text
    assert "20 entries" in client.get("/admin/audit", params={"actor": "bulk1@", "entity_type": "widget"}).text
    day = (now - timedelta(days=5)).date().isoformat()
    exact = client.get("/admin/audit", params={"action": "bulk_action", "since": day, "until": day})
    assert "1 entries" in exact.text and "widget 5" in text_of(exact.text)
    week = client.get("/admin/audit", params={"action": "bulk_action", "since": (now - timedelta(days=6)).date()
                                              .isoformat()})
    assert "7 entries" in week.text
    assert "0 entries" in client.get("/admin/audit", params={"actor": "nobody"}).text
    for params, message in (({"since": "yesterday"}, "From must be a date"),
                            ({"since": "2026-02-02", "until": "2026-02-01"}, "the From date is after the To date")):
        refused = client.get("/admin/audit", params=params)
        assert refused.status_code == 422 and message in refused.text and "Cannot filter:" in refused.text


POSTS: list[tuple[str, dict[str, Any]]] = [
    ("/admin/channels", {"plugin": "webhook", "name": "shop"}),
    ("/admin/channels/shop/remove", {}),
    ("/admin/rules/preview", {"source": EDITED_RULES}),
    ("/admin/rules", {"source": EDITED_RULES}),
    ("/admin/users", {"email": "new@example.test", "role": "admin"}),
    ("/admin/users/2", {"change": "update", "role": "admin"}),
    ("/admin/keys", {"name": "k", "scope": "admin"}),
    ("/admin/keys/revoke", {"name": "kept"}),
    ("/admin/reply-template/preview", {"template": "x $theme"}),
    ("/admin/reply-template", {"template": "x $theme"}),
]


@pytest.mark.parametrize(("path", "form"), POSTS)
def test_posts_without_the_csrf_token_change_nothing(admin: Admin, path: str, form: dict[str, Any]) -> None:
    client = admin.client()
    token = csrf(client, "/admin/channels")
    client.post("/admin/channels", data={"csrf_token": token, "plugin": "webhook", "name": "shop"})
    client.post("/admin/keys", data={"csrf_token": token, "name": "kept", "scope": "read"})
    form = {**form, "previewed": hashlib.sha256(str(form.get("source", form.get("template", ""))).encode())
            .hexdigest(), "file_sha": hashlib.sha256(RULES.encode()).hexdigest()}
    audit_before = admin.count(select(AuditEntry))
    for data in (form, {**form, "csrf_token": "forged"}):
        answer = client.post(path, data=data, follow_redirects=False)
        assert answer.status_code == 403 and "CSRF token" in answer.text
    cross_site = client.post(path, data={**form, "csrf_token": token}, headers={"Origin": "https://evil.example"},
                             follow_redirects=False)
    assert cross_site.status_code == 403
    assert admin.count(select(AuditEntry)) == audit_before and admin.rules.read_text() == RULES
    assert admin.count(select(Channel)) == 1 and admin.count(select(ApiKey).where(ApiKey.revoked.is_(False))) == 1
    assert admin.user(PM).role == "pm" and admin.count(select(User)) == len(PEOPLE)
    with admin.loop.session() as session:
        assert session.get(Setting, TEMPLATE_SETTING) is None
