"""The admin pages (api/pages/admin*.py): admins only, every change stored and audited under the signed-in
person, refused input re-rendered with its message (4xx, nothing stored), no change without the form's
CSRF token, and previews (rules, reply template) that change nothing until saved."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from core.audit import record
from core.auth.users import find_user
from core.loop import FeedbackLoop
from core.models import ApiKey, AuditEntry, Channel, FeedbackItem, Setting, Theme, User, WebSession
from core.routing.replies import DEFAULT_TEMPLATE, TEMPLATE_SETTING
from tests.support.loops import make_loop
from tests.support.workspace_browser import PASSWORD, PEOPLE, RULES, UNLIMITED, seed

ADMIN, PM, VIEWER = (PEOPLE[who][0] for who in ("admin", "pm", "viewer"))
PAGES = ("/admin", "/admin/channels", "/admin/rules", "/admin/users", "/admin/keys", "/admin/reply-template",
         "/admin/audit")
# Checkout themes to billing instead of payments; the rest to product.
EDITED_RULES = ('[default]\nowner = "product"\n\n[[rule]]\nname = "checkout"\nowner = "billing"\ntarget = "inbox"\n'
                'keywords_any = ["checkout"]\n')


@dataclass
class Admin:
    loop: FeedbackLoop
    app: Any
    rules: Path
    themes: dict[str, int]

    def client(self, email: str | None = ADMIN) -> TestClient:
        """A browser: signed in as ``email`` through the sign-in form (None: not signed in)."""
        client = TestClient(self.app, base_url="http://127.0.0.1")
        if email is not None:
            form = client.get("/signin")
            token = re.search(r'name="form_token" value="([^"]+)"', form.text)
            assert token is not None
            answer = client.post("/signin", data={"form_token": token.group(1), "email": email,
                                                  "password": PASSWORD, "next": "/"}, follow_redirects=False)
            assert answer.status_code == 303, answer.text
        return client

    def count(self, statement: Any) -> int:
        with self.loop.session() as session:
            return int(session.scalar(select(func.count()).select_from(statement.subquery())) or 0)

    def audit(self, action: str) -> list[AuditEntry]:
        with self.loop.session() as session:
            rows = list(session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))
            session.expunge_all()
            return rows

    def user(self, email: str) -> User:
        with self.loop.session() as session:
            user = find_user(session, email)
            assert user is not None
            session.expunge_all()
            return user


def make_admin(tmp_path: Path, url: str | None = None, rules_file: bool = True) -> Admin:
    tmp_path.mkdir(parents=True, exist_ok=True)
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    loop = make_loop(url or f"sqlite:///{tmp_path / 'admin.db'}", rules_file=rules if rules_file else None,
                     **UNLIMITED)
    themes, _items = seed(loop)
    return Admin(loop, create_app(loop.settings, loop=loop), rules, themes)


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[Admin]:
    made = make_admin(tmp_path)
    yield made
    made.loop.close()


@pytest.fixture
def any_admin(tmp_path: Path, database_url: str) -> Iterator[Admin]:
    made = make_admin(tmp_path, database_url)
    yield made
    made.loop.close()


def csrf(client: TestClient, path: str = "/admin") -> str:
    page = client.get(path)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text[:500]
    return found.group(1)


def field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found is not None, f"no field {name}"
    return html.unescape(found.group(1))


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_admin_pages_for_admins_only(admin: Admin) -> None:
    signed_in = admin.client()
    for path in PAGES:
        page = signed_in.get(path)
        assert page.status_code == 200, (path, page.text[:300])
        assert '<nav class="admin-nav" aria-label="Admin pages">' in page.text and "<h1>" in page.text
    for who in (PM, VIEWER):
        other = admin.client(who)
        for path in PAGES:
            assert other.get(path).status_code == 403, (who, path)
        assert other.post("/admin/users", data={"csrf_token": csrf(other, "/"), "email": "x@example.test",
                                                "role": "admin"}).status_code == 403
    assert admin.count(select(User).where(User.email == "x@example.test")) == 0
    anonymous = admin.client(None)
    for path in PAGES:
        answer = anonymous.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/signin?next=%2Fadmin")


def test_channels_add_list_remove(admin: Admin) -> None:
    client = admin.client()
    token = csrf(client, "/admin/channels")
    answer = client.post("/admin/channels", follow_redirects=False, data={
        "csrf_token": token, "plugin": "webhook", "name": "shop", "secret_env": "SHOP_SECRET",
        "options": 'text_field = "body"\napi_token = "abc123"\nreply_url = "https://chat.example/hooks/T0/SECRET"\n'})
    assert answer.status_code == 303 and "Channel+shop+added" in answer.headers["location"]
    with admin.loop.session() as session:
        channel = session.scalar(select(Channel).where(Channel.name == "shop"))
        assert channel is not None and channel.plugin == "webhook" and channel.secret_env == "SHOP_SECRET"
        assert channel.options == {"text_field": "body", "api_token": "abc123",
                                   "reply_url": "https://chat.example/hooks/T0/SECRET"}
    [entry] = admin.audit("add_channel")
    assert entry.actor == f"user:{ADMIN}" and entry.entity_id == "shop"
    listing = client.get(answer.headers["location"])
    assert "Channel shop added" in listing.text and "http://127.0.0.1:8000/webhooks/shop" in listing.text
    assert "abc123" not in listing.text and "SECRET" not in listing.text.replace("SHOP_SECRET", "")
    assert "(hidden)" in listing.text and "https://chat.example/…" in listing.text
    # JSON options work too.
    assert client.post("/admin/channels", follow_redirects=False, data={
        "csrf_token": token, "plugin": "github", "name": "gh", "options": '{"exclude_labels": "wontfix"}'}
                       ).status_code == 303
    # Removing: a confirm step that says what happens to the items, then the removal.
    confirm = client.get("/admin/channels/discourse/remove")
    assert confirm.status_code == 404  # the seed's items came through the API, not a channel
    with admin.loop.session() as session:
        session.add(FeedbackItem(channel="shop", external_id="1", text_original="a", text_redacted="a"))
    confirm = client.get("/admin/channels/shop/remove")
    assert confirm.status_code == 200 and "Its 1 stored items stay" in text_of(confirm.text)
    assert admin.count(select(Channel).where(Channel.name == "shop")) == 1
    answer = client.post("/admin/channels/shop/remove", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303
    assert admin.count(select(Channel).where(Channel.name == "shop")) == 0
    assert admin.count(select(FeedbackItem).where(FeedbackItem.channel == "shop")) == 1
    assert [e.actor for e in admin.audit("remove_channel")] == [f"user:{ADMIN}"]


@pytest.mark.parametrize(("form", "status", "message"), [
    ({"plugin": "webhook", "name": "Bad Name"}, 400, "must be lower-case letters"),
    ({"plugin": "nope", "name": "shop"}, 400, "no intake plugin provides channel type 'nope'"),
    ({"plugin": "webhook", "name": "shop", "options": "text_field = "}, 422, "options are not valid TOML"),
    ({"plugin": "webhook", "name": "shop", "options": "[1, 2]"}, 422, "not valid TOML"),
    ({"plugin": "webhook", "name": "shop", "options": '{"a": '}, 422, "options are not valid JSON"),
    ({"plugin": "webhook", "name": "shop", "secret_env": "not a name"}, 400, "is not an environment variable"),
    ({"plugin": "webhook", "name": "shop", "options": 'reply_url = "file:///etc/passwd"'}, 422, "reply_url"),
])
def test_channel_refused_input_rerendered(admin: Admin, form: dict[str, str], status: int, message: str) -> None:
    client = admin.client()
    answer = client.post("/admin/channels", data={"csrf_token": csrf(client, "/admin/channels"), **form})
    assert answer.status_code == status, answer.text[:500]
    assert message in text_of(answer.text) and "Add a channel" in answer.text
    assert f'value="{html.escape(form["name"])}"' in answer.text  # what was typed comes back
    assert admin.count(select(Channel)) == 0 and admin.audit("add_channel") == []


def test_channel_name_taken_is_a_conflict(admin: Admin) -> None:
    client = admin.client()
    token = csrf(client, "/admin/channels")
    client.post("/admin/channels", data={"csrf_token": token, "plugin": "webhook", "name": "shop"})
    answer = client.post("/admin/channels", data={"csrf_token": token, "plugin": "github", "name": "shop"})
    assert answer.status_code == 409 and "already exists" in answer.text
    assert len(admin.audit("add_channel")) == 1


def test_rules_preview_changes_nothing_until_saved(admin: Admin) -> None:
    client = admin.client()
    page = client.get("/admin/rules")
    assert "checkout" in page.text and str(admin.rules) in page.text
    preview = client.post("/admin/rules/preview", data={"csrf_token": csrf(client), "source": EDITED_RULES})
    assert preview.status_code == 200
    shown = text_of(preview.text)
    assert "payments via inbox (rule checkout)" in shown and "billing via inbox (rule checkout)" in shown
    assert "product via inbox (rule default)" in shown and "changes" in shown
    assert f"{len(admin.themes)} of {len(admin.themes)} active themes would go to someone else" in shown
    assert admin.rules.read_text() == RULES and admin.audit("replace_rules") == []
    answer = client.post("/admin/rules", follow_redirects=False, data={
        "csrf_token": csrf(client), "source": EDITED_RULES.replace("\n", "\r\n"),
        "previewed": field(preview.text, "previewed"), "file_sha": field(preview.text, "file_sha")})
    assert answer.status_code == 303 and "Rules+saved" in answer.headers["location"]
    assert admin.rules.read_text() == EDITED_RULES  # the browser's CRLF line breaks are stored as LF
    [entry] = admin.audit("replace_rules")
    assert entry.actor == f"user:{ADMIN}"
    assert entry.details["sha256_after"] == hashlib.sha256(EDITED_RULES.encode()).hexdigest()
    assert "billing" in client.get("/admin/rules").text


@pytest.mark.parametrize(("source", "message"), [
    ("[[rule]\nname = 'x'", "not valid TOML"),
    ('[[rule]]\nname = "x"\n', "rules line 1: 'owner' is required"),
    ('[[rule]]\nname = "x"\nowner = "a"\nkind = ["rant"]\n', "'kind' values must be among"),
    ('[[rule]]\nname = "x"\nowner = "a"\ntarget = "chat_webhook"\ntarget_options = { url = "ftp://x" }\n', "ftp"),
])
def test_invalid_rules_rerendered_and_not_saved(admin: Admin, source: str, message: str) -> None:
    client = admin.client()
    for path, extra in (("/admin/rules/preview", {}), ("/admin/rules", {"previewed": hashlib.sha256(
            source.encode()).hexdigest(), "file_sha": hashlib.sha256(RULES.encode()).hexdigest()})):
        answer = client.post(path, data={"csrf_token": csrf(client), "source": source, **extra})
        assert answer.status_code == 422, (path, answer.text[:300])
        assert message in text_of(answer.text) and html.escape(source.splitlines()[0]) in answer.text
    assert admin.rules.read_text() == RULES and admin.audit("replace_rules") == []


def test_rules_save_only_what_was_previewed_against_the_file_previewed(admin: Admin) -> None:
    client = admin.client()
    preview = client.post("/admin/rules/preview", data={"csrf_token": csrf(client), "source": EDITED_RULES})
    previewed, file_sha = field(preview.text, "previewed"), field(preview.text, "file_sha")
    edited_again = EDITED_RULES.replace("billing", "finance")
    answer = client.post("/admin/rules", data={"csrf_token": csrf(client), "source": edited_again,
                                               "previewed": previewed, "file_sha": file_sha})
    assert answer.status_code == 200 and "changed after their preview" in answer.text
    assert "finance via inbox" in text_of(answer.text) and admin.rules.read_text() == RULES
    admin.rules.write_text(RULES + "\n# someone else's edit\n")
    answer = client.post("/admin/rules", data={"csrf_token": csrf(client), "source": EDITED_RULES,
                                               "previewed": previewed, "file_sha": file_sha})
    assert answer.status_code == 409 and "changed since this preview" in answer.text
    assert "someone else" in admin.rules.read_text() and admin.audit("replace_rules") == []


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


def test_keys_create_shown_once_and_revoke(admin: Admin) -> None:
    client = admin.client()
    token = csrf(client, "/admin/keys")
    made = client.post("/admin/keys", data={"csrf_token": token, "name": "reporting", "scope": ["read"]})
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    shown = re.search(r'value="(fbl_[^"]+)"', made.text)
    assert shown is not None
    key = shown.group(1)
    with admin.loop.session() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.name == "reporting"))
        assert row is not None and row.key_hash == hashlib.sha256(key.encode()).hexdigest() and row.scopes == ["read"]
    assert key not in client.get("/admin/keys").text
    assert admin.audit("create_key")[0].actor == f"user:{ADMIN}"
    api = TestClient(admin.app, base_url="http://127.0.0.1")
    assert api.get("/api/v1/themes", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    confirm = client.get("/admin/keys/revoke", params={"name": "reporting"})
    assert confirm.status_code == 200 and "stops working at once" in confirm.text
    assert api.get("/api/v1/themes", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    answer = client.post("/admin/keys/revoke", data={"csrf_token": token, "name": "reporting"},
                         follow_redirects=False)
    assert answer.status_code == 303
    assert api.get("/api/v1/themes", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert admin.audit("revoke_key")[0].actor == f"user:{ADMIN}"
    for form, status, message in (({"name": "x"}, 422, "at least one scope"),
                                  ({"name": "bad name", "scope": "read"}, 422, "must be 1-64 letters"),
                                  ({"name": "x", "scope": "read", "channels": "web"}, 422, "channels bind"),
                                  ({"name": "nope"}, 404, "no active key")):
        path = "/admin/keys/revoke" if form["name"] == "nope" else "/admin/keys"
        answer = client.post(path, data={"csrf_token": token, **form})
        assert answer.status_code == status and message in text_of(answer.text), (form, answer.text[:300])
    assert admin.count(select(ApiKey)) == 1


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
