"""Writes across channels (issue 14, fault 6): key scopes, bound channels, webhook channels' items left
alone, slug channel names, and audit entries that name the key.

The expected matrix is written out here, not computed from ``core.auth.api_keys``, so a change to the
grants has to change this table too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core.auth.api_keys import create_api_key
from core.intake.channels import add_channel, remove_channel
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import AuditEntry, FeedbackItem, Theme, WebhookDelivery
from core.types import ItemDraft
from tests.support.env import ADMIN_KEY
from tests.support.loops import make_loop
from tests.support.themes import CHECKOUT, LOGIN, build_themes

RULES = '[default]\nowner = "product"\n'
# Who may call each route: the scopes whose keys get past the key check (anything but 401/403).
EVERYONE_WHO_READS = {"read", "pm", "admin"}
PM = {"pm", "admin"}
INTAKE = {"intake", "admin"}
ADMIN = {"admin"}
# (method, route template, body, who may); ids in templates are filled in by the fixture's data.
MATRIX: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
    ("GET", "/api/v1/feedback", None, EVERYONE_WHO_READS),
    ("GET", "/api/v1/themes", None, EVERYONE_WHO_READS),
    ("GET", "/api/v1/themes/{theme_id}", None, EVERYONE_WHO_READS),
    ("GET", "/api/v1/areas", None, EVERYONE_WHO_READS),
    ("GET", "/api/v1/deliveries", None, EVERYONE_WHO_READS),
    ("GET", "/api/v1/loop/reply-template", None, EVERYONE_WHO_READS),
    ("PATCH", "/api/v1/themes/{theme_id}", {"owner": "payments"}, PM),
    ("PATCH", "/api/v1/themes/{theme_id}", {"area_id": 999_999}, PM),
    ("POST", "/api/v1/themes/{theme_id}/merge", {"into": 999_999}, PM),
    ("POST", "/api/v1/themes/{theme_id}/split", {"item_ids": [999_999], "label": "rest"}, PM),
    ("POST", "/api/v1/feedback/{item_id}/move", {"theme_id": 999_999}, PM),
    ("POST", "/api/v1/feedback/{item_id}/pin", {"theme_id": 999_999}, PM),
    ("POST", "/api/v1/deliveries/{delivery_id}/retry", None, PM),
    ("GET", "/api/v1/routing/dry-run", None, PM),
    ("PUT", "/api/v1/loop/reply-template", {"template": "We marked $theme $status: $link"}, PM),
    ("POST", "/api/v1/feedback", {"text": "Please add dark mode", "channel": "app"}, INTAKE),
    ("GET", "/api/v1/channels", None, ADMIN),
    ("POST", "/api/v1/channels", {"name": "survey", "plugin": "no-such-plugin"}, ADMIN),
    ("DELETE", "/api/v1/channels/{name}", None, ADMIN),
    ("GET", "/api/v1/channels/{name}/vitality", None, EVERYONE_WHO_READS),
    ("GET", "/api/v1/themes/{theme_id}/champions", None, EVERYONE_WHO_READS),
    ("POST", "/api/v1/themes/{theme_id}/champions/{pseudonym}/invitations", {"kind": "beta"}, PM),
    ("POST", "/api/v1/themes/{theme_id}/champions/{pseudonym}/invitations/answer", {"answer": "accepted"}, PM),
    ("GET", "/api/v1/champions/invitation-template", None, EVERYONE_WHO_READS),
    ("PUT", "/api/v1/champions/invitation-template", {"template": "Join our $kind on $theme: $link"}, PM),
    ("GET", "/api/v1/themes/{theme_id}/publication", None, EVERYONE_WHO_READS),
    ("PUT", "/api/v1/themes/{theme_id}/publication", {"title": "Faster exports", "asked": "Exports time out",
                                                       "done": "Exports stream now"}, PM),
    ("DELETE", "/api/v1/themes/{theme_id}/publication", None, PM),
    ("GET", "/api/v1/rules", None, ADMIN),
    ("POST", "/api/v1/rules/validate", {"source": RULES}, ADMIN),
    ("PUT", "/api/v1/rules", {"source": RULES}, ADMIN),
]


@pytest.fixture
def scoped(tmp_path: Path) -> Iterator[tuple[FeedbackLoop, TestClient, dict[str, dict[str, str]]]]:
    """A loop with themes, a rules file, and one key per scope (plus the environment's admin key)."""
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    loop = make_loop(f"sqlite:///{tmp_path / 'scopes.db'}", rules_file=rules)
    build_themes(loop, CHECKOUT + LOGIN)
    headers = {"env-admin": {"Authorization": f"Bearer {ADMIN_KEY}"}}
    with loop.session() as session:
        for scope in ("read", "pm", "intake", "admin"):
            headers[scope] = {"Authorization": f"Bearer {create_api_key(session, f'{scope}-key', [scope])}"}
        headers["forms-only"] = {"Authorization": "Bearer " + create_api_key(session, "forms-bot", ["intake"],
                                                                            channels=["forms"])}
    with TestClient(create_app(loop.settings, loop=loop)) as client:
        yield loop, client, headers
    loop.close()


def filled(template: str, loop: FeedbackLoop) -> str:
    with loop.session() as session:
        theme_id = session.scalars(select(Theme.id).order_by(Theme.id)).first()
        item_id = session.scalars(select(FeedbackItem.id).order_by(FeedbackItem.id)).first()
    return template.format(theme_id=theme_id, item_id=item_id, delivery_id=999_999, name="no-such-channel",
                           pseudonym="no-such-author")


def test_the_matrix_covers_every_api_route(scoped: tuple[FeedbackLoop, TestClient, Any]) -> None:
    loop, _, _ = scoped
    paths = create_app(loop.settings, loop=loop).openapi()["paths"]
    served = {(method.upper(), path) for path, operations in paths.items() if path.startswith("/api/v1")
              for method in operations if method in ("get", "post", "put", "patch", "delete")}
    assert served == {(method, template) for method, template, _, _ in MATRIX}


@pytest.mark.parametrize("scope", ["read", "pm", "intake", "admin"])
def test_each_scope_reaches_what_it_may_and_nothing_else(scoped: tuple[FeedbackLoop, TestClient, Any],
                                                         scope: str) -> None:
    loop, client, headers = scoped
    for method, template, body, who_may in MATRIX:
        answer = client.request(method, filled(template, loop), json=body, headers=headers[scope])
        if scope in who_may:
            assert answer.status_code not in (401, 403), (method, template, answer.text)
        else:
            needed = next(s for s in ("read", "intake", "pm", "admin") if s in who_may)
            assert answer.status_code == 403, (method, template, answer.text)
            assert answer.json()["error"] == "forbidden" and repr(needed) in answer.json()["detail"]


def test_the_environments_admin_key_reaches_everything(scoped: tuple[FeedbackLoop, TestClient, Any]) -> None:
    loop, client, headers = scoped
    for method, template, body, _ in MATRIX:
        answer = client.request(method, filled(template, loop), json=body, headers=headers["env-admin"])
        assert answer.status_code not in (401, 403), (method, template, answer.text)


def test_a_bound_intake_key_posts_to_its_channels_only(scoped: tuple[FeedbackLoop, TestClient, Any]) -> None:
    loop, client, headers = scoped
    assert client.post("/api/v1/feedback", json={"text": "Love the form", "channel": "forms"},
                       headers=headers["forms-only"]).status_code == 201
    other = client.post("/api/v1/feedback", json={"text": "Sneaky", "channel": "api"}, headers=headers["forms-only"])
    assert other.status_code == 403 and "forms" in other.json()["detail"] and "'api'" in other.json()["detail"]
    mixed = client.post("/api/v1/feedback", headers=headers["forms-only"],
                        json={"items": [{"text": "fine", "channel": "forms"}, {"text": "not fine", "channel": "app"}]})
    assert mixed.status_code == 403
    with loop.session() as session:
        texts = set(session.scalars(select(FeedbackItem.text_original).where(FeedbackItem.channel != "api")))
    assert texts == {"Love the form"}  # nothing of the refused batch was stored
    # The same unbound intake key may post to any API channel.
    assert client.post("/api/v1/feedback", json={"text": "Anywhere", "channel": "kiosk"},
                       headers=headers["intake"]).status_code == 201


@pytest.mark.parametrize("channel", ["<b>forum</b>", "Forms", "my channel", "-dash", "a" * 65, "forum/../x", ""])
def test_api_channel_names_are_slugs(scoped: tuple[FeedbackLoop, TestClient, Any], channel: str) -> None:
    loop, client, headers = scoped
    answer = client.post("/api/v1/feedback", json={"text": "hello", "channel": channel}, headers=headers["env-admin"])
    assert answer.status_code == 422 and "channel" in answer.json()["detail"]
    with loop.session() as session:
        assert session.scalar(select(FeedbackItem.id).where(FeedbackItem.channel == channel)) is None


def test_no_key_rewrites_or_adds_to_a_webhook_channel(scoped: tuple[FeedbackLoop, TestClient, Any]) -> None:
    loop, client, headers = scoped
    with loop.session() as session:
        add_channel(loop, session, "forum", "webhook", secret_env="FORUM_SECRET")
        ingest(loop, session, [ItemDraft(text="The export button is broken", channel="forum", external_id="p1",
                                         metadata={"topic_id": 7})])
        session.add(WebhookDelivery(channel="forum", delivery_id="d1"))
    rewrite = {"text": "Everything is fine", "channel": "forum", "external_id": "p1", "metadata": {"topic_id": 8}}
    for name in ("env-admin", "admin", "intake"):
        answer = client.post("/api/v1/feedback", json=rewrite, headers=headers[name])
        assert answer.status_code == 403 and "webhook channel" in answer.json()["detail"], answer.text
        added = client.post("/api/v1/feedback", json={"text": "new", "channel": "forum"}, headers=headers[name])
        assert added.status_code == 403
    with loop.session() as session:  # removed, the channel's items stay its own
        remove_channel(session, "forum")
    assert client.post("/api/v1/feedback", json=rewrite, headers=headers["env-admin"]).status_code == 403
    with loop.session() as session:
        item = session.scalars(select(FeedbackItem).where(FeedbackItem.channel == "forum")).one()
        assert (item.text_original, item.metadata_json) == ("The export button is broken", {"topic_id": 7})


def actors(loop: FeedbackLoop, action: str) -> list[str]:
    with loop.session() as session:
        return list(session.scalars(select(AuditEntry.actor).where(AuditEntry.action == action)
                                    .order_by(AuditEntry.id)))


def test_audit_entries_name_the_key(scoped: tuple[FeedbackLoop, TestClient, Any]) -> None:
    loop, client, headers = scoped
    theme = filled("{theme_id}", loop)
    assert client.patch(f"/api/v1/themes/{theme}", json={"label": "Cards declined"},
                        headers=headers["pm"]).status_code == 200
    assert actors(loop, "rename") == ["key:pm-key"]
    assert client.put("/api/v1/loop/reply-template", json={"template": "Done: $theme ($link)"},
                      headers=headers["pm"]).status_code == 200
    assert actors(loop, "set_reply_template") == ["key:pm-key"]
    new_rules = RULES + '\n[[rule]]\nname = "cards"\nowner = "cards"\nkeywords_any = ["card"]\n'
    assert client.put("/api/v1/rules", json={"source": new_rules}, headers=headers["env-admin"]).status_code == 200
    assert actors(loop, "replace_rules") == ["key:FEEDBACKLOOP_ADMIN_KEY"]
    refused = client.put("/api/v1/rules", json={"source": "[[rule]]\nowner = 1\n"}, headers=headers["admin"])
    assert refused.status_code == 422 and actors(loop, "replace_rules") == ["key:FEEDBACKLOOP_ADMIN_KEY"]
    assert client.post("/api/v1/channels", json={"name": "survey", "plugin": "webhook"},
                       headers=headers["admin"]).status_code == 201
    assert client.delete("/api/v1/channels/survey", headers=headers["admin"]).status_code == 204
    assert actors(loop, "add_channel") == actors(loop, "remove_channel") == ["key:admin-key"]
    with loop.session() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "replace_rules")).one()
        assert "cards" not in str(entry.details)  # a digest, not the file (rules may carry webhook URLs)
        template = session.scalars(select(AuditEntry).where(AuditEntry.action == "set_reply_template")).one()
        assert template.details["to"] == "Done: $theme ($link)"


def test_keys_from_before_scopes_keep_what_they_could_do(scoped: tuple[FeedbackLoop, TestClient, Any]) -> None:
    from core.auth.api_keys import hash_key
    from core.models import ApiKey

    loop, client, _ = scoped
    with loop.session() as session:  # as migration 0005 left them, and a row it never saw
        session.add(ApiKey(name="old-member", key_hash=hash_key("old-member-key"), role="member",
                           scopes=["pm", "intake"]))
        session.add(ApiKey(name="legacy", key_hash=hash_key("legacy-key"), role="member", scopes=None))
    for key in ("old-member-key", "legacy-key"):
        member = {"Authorization": f"Bearer {key}"}
        assert client.post("/api/v1/feedback", json={"text": "still works"}, headers=member).status_code == 201
        assert client.get("/api/v1/themes", headers=member).status_code == 200
        assert client.get("/api/v1/channels", headers=member).status_code == 403


def test_keys_commands_create_list_and_revoke_with_audit(cli_env: str, tmp_path: Path) -> None:
    import getpass

    from typer.testing import CliRunner

    from core.cli.app import app
    from core.settings import get_settings

    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "forms-bot", "--scope", "intake", "--channel", "forms"])
    assert created.exit_code == 0, created.output
    forms_key = created.output.strip()
    assert runner.invoke(app, ["keys", "create", "a-rather-long-name-for-a-product-manager", "--scope", "pm",
                               "--scope", "read", "--scope", "intake"]).exit_code == 0
    listed = runner.invoke(app, ["keys", "list"])
    assert listed.exit_code == 0 and all(len(line) <= 80 for line in listed.output.splitlines()), listed.output
    assert "forms-bot" in listed.output and "intake" in listed.output and "forms" in listed.output
    assert "pm,intake" in listed.output and "any" in listed.output  # read goes without saying with pm
    with TestClient(create_app(get_settings())) as client:
        bound = {"Authorization": f"Bearer {forms_key}"}
        ok = client.post("/api/v1/feedback", json={"text": "ok", "channel": "forms"}, headers=bound)
        elsewhere = client.post("/api/v1/feedback", json={"text": "no", "channel": "api"}, headers=bound)
        assert (ok.status_code, elsewhere.status_code) == (201, 403)
        assert runner.invoke(app, ["keys", "revoke", "forms-bot"]).exit_code == 0
        assert client.post("/api/v1/feedback", json={"text": "gone", "channel": "forms"},
                           headers=bound).status_code == 401
    assert "revoked" in runner.invoke(app, ["keys", "list"]).output
    for bad, says in ((["--scope", "root"], "unknown scope 'root'"), ([], "at least one scope"),
                      (["--scope", "pm", "--channel", "forms"], "intake"),
                      (["--scope", "intake", "--channel", "Not A Slug"], "slug")):
        refused = runner.invoke(app, ["keys", "create", "x", *bad])
        assert refused.exit_code == 2 and says in refused.output, (bad, refused.output)
    assert runner.invoke(app, ["keys", "revoke", "nobody"]).exit_code == 2
    assert runner.invoke(app, ["channels", "add", "forum", "--plugin", "webhook"]).exit_code == 0
    export = tmp_path / "forum.csv"
    export.write_text("id,text\np1,Rewritten from a file\n")
    into_webhook = runner.invoke(app, ["ingest", str(export), "--id-column", "id", "--channel", "forum"])
    assert into_webhook.exit_code == 2 and "webhook channel" in into_webhook.output
    assert runner.invoke(app, ["channels", "remove", "forum"]).exit_code == 0
    loop = FeedbackLoop(get_settings())
    try:
        me = f"cli:{getpass.getuser()}"
        for action in ("create_key", "revoke_key", "add_channel", "remove_channel"):
            assert set(actors(loop, action)) == {me}, action
        assert len(actors(loop, "create_key")) == 2
    finally:
        loop.close()
