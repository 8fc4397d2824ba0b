"""The admin pages (api/pages/admin*.py), the installation's side: admins only, channels, rules and the
reply template; refused input re-rendered with its message (4xx, nothing stored), and previews that change
nothing until saved."""

from __future__ import annotations

import hashlib
import html
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.pages.admin import summarize_value
from core.models import ApiKey, Channel, FeedbackItem, User
from tests.support.admin_pages import (
    ADMIN,
    EDITED_RULES,
    PAGES,
    PM,
    VIEWER,
    Admin,
    csrf,
    field,
    text_of,
)
from tests.support.workspace_browser import RULES


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
        "csrf_token": token, "plugin": "discourse", "name": "shop", "secret_env": "SHOP_SECRET",
        "options": 'exclude_categories = "staff"\nreply_url = "https://chat.example/hooks/T0/SECRET"\n'})
    assert answer.status_code == 303 and "Channel+shop+added" in answer.headers["location"]
    with admin.loop.session() as session:
        channel = session.scalar(select(Channel).where(Channel.name == "shop"))
        assert channel is not None and channel.plugin == "discourse" and channel.secret_env == "SHOP_SECRET"
        assert channel.options == {"exclude_categories": "staff", "reply_url": "https://chat.example/hooks/T0/SECRET"}
    [entry] = admin.audit("add_channel")
    assert entry.actor == f"user:{ADMIN}" and entry.entity_id == "shop"
    listing = client.get(answer.headers["location"])
    assert "Channel shop added" in listing.text and "http://127.0.0.1:8000/webhooks/shop" in listing.text
    assert "SECRET" not in listing.text.replace("SHOP_SECRET", "") and "https://chat.example/…" in listing.text
    # A third-party type that declares no options may take a credential as one: the list never shows it.
    assert summarize_value("api_token", "abc123") == "(hidden)" and summarize_value("token_env", "T") == "T"
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
    ({"plugin": "discourse", "name": "shop", "options": 'reply_url = "file:///etc/passwd"'}, 422, "reply_url"),
    ({"plugin": "webhook", "name": "shop", "options": 'text_feild = "body"'}, 400, "takes no option 'text_feild'"),
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
