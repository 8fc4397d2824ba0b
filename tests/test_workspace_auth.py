"""Sign-in and roles of the workspace: accounts (CLI and core), argon2 passwords, server-side sessions,
cookie flags, CSRF on every form, the failed sign-in budget, and what each role may do."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from api.app import create_app
from api.pages.common import SESSION_COOKIE
from core.auth import users
from core.auth.users import add_user, check_password, oidc_user
from core.auth.web_sessions import resolve_session, revoke_session, start_session
from core.cli.app import app as cli_app
from core.clock import utcnow
from core.errors import Conflict, InvalidInput
from core.loop import FeedbackLoop
from core.models import AuditEntry, Theme, User, WebSession
from tests.support.loops import make_loop
from tests.support.themes import CHECKOUT, LOGIN, build_themes
from tests.support.workspace import PASSWORD, sign_in

runner = CliRunner()


@pytest.fixture
def web(loop: FeedbackLoop) -> Iterator[TestClient]:
    """A client on a loopback address over plain http, where the session cookie is not Secure."""
    with TestClient(create_app(loop.settings, loop=loop), base_url="http://127.0.0.1") as client:
        yield client


def form_token(page_text: str) -> str:
    found = re.search(r'name="form_token" value="([^"]+)"', page_text)
    assert found is not None
    return found.group(1)


def password_sign_in(client: TestClient, email: str, password: str, next_path: str = "/"):  # type: ignore[no-untyped-def]
    token = form_token(client.get("/signin").text)
    return client.post("/signin", data={"form_token": token, "email": email, "password": password,
                                        "next": next_path}, follow_redirects=False)


def test_users_are_managed_from_the_cli_with_clear_errors(cli_env: str) -> None:
    added = runner.invoke(cli_app, ["users", "add", "PM@Example.com", "--role", "pm", "--name", "Pat"])
    assert added.exit_code == 0, added.output
    generated = re.search(r"Password \(shown once\): (\S+)", added.output)
    assert generated is not None
    assert runner.invoke(cli_app, ["users", "add", "pm@example.com"]).exit_code == 2  # already there
    assert runner.invoke(cli_app, ["users", "add", "x@example.com", "--role", "boss"]).exit_code == 2
    short = runner.invoke(cli_app, ["users", "add", "y@example.com", "--password-stdin"], input="short\n")
    assert short.exit_code == 2 and "at least 12 characters" in short.output
    chosen = runner.invoke(cli_app, ["users", "add", "z@example.com", "--role", "admin", "--password-stdin"],
                           input=f"{PASSWORD}\n")
    assert chosen.exit_code == 0 and "shown once" not in chosen.output
    listing = runner.invoke(cli_app, ["users", "list"])
    assert "pm@example.com" in listing.output and all(len(line) <= 80 for line in listing.output.splitlines())
    loop = make_loop(cli_env)
    with loop.session() as session:
        assert check_password(session, "pm@example.com", generated.group(1)) is not None
        token = start_session(session, session.scalars(select(User).where(User.email == "pm@example.com")).one())
        session.commit()
    reset = runner.invoke(cli_app, ["users", "reset-password", "pm@example.com", "--password-stdin"],
                          input=f"{PASSWORD}\n")
    assert reset.exit_code == 0 and "1 sessions signed out" in reset.output
    assert runner.invoke(cli_app, ["users", "set", "z@example.com", "--role", "pm"]).exit_code == 2  # last admin
    assert runner.invoke(cli_app, ["users", "set", "nobody@example.com", "--role", "pm"]).exit_code == 2
    with loop.session() as session:
        assert resolve_session(session, token) is None  # the reset signed the old session out
        assert check_password(session, "pm@example.com", generated.group(1)) is None
        assert check_password(session, "pm@example.com", PASSWORD) is not None
        actions = set(session.scalars(select(AuditEntry.action)))
        assert {"add_user", "reset_password"} <= actions
    loop.close()


def test_passwords_are_argon2_and_rehashed_when_the_parameters_move(loop: FeedbackLoop,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with loop.session() as session:
        user = add_user(session, "a@example.com", "pm", password=PASSWORD)
        assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
        weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
        user.password_hash = weak.hash(PASSWORD)
        old = user.password_hash
        assert check_password(session, "a@example.com", "wrong password here") is None
        assert check_password(session, "A@Example.com ", PASSWORD) is user
        assert user.password_hash != old and not PasswordHasher().check_needs_rehash(user.password_hash)
        assert check_password(session, "unknown@example.com", PASSWORD) is None
        user.active = False
        assert check_password(session, "a@example.com", PASSWORD) is None
        with pytest.raises(InvalidInput):
            add_user(session, "not an address", "pm")


def test_sessions_end_when_revoked_idle_expired_or_the_user_is_deactivated(any_loop: FeedbackLoop) -> None:
    with any_loop.session() as session:
        user = add_user(session, "s@example.com", "viewer", password=PASSWORD)
        live, idle, old, revoked = (start_session(session, user) for _ in range(4))
        session.flush()
        assert resolve_session(session, live) is not None
        assert resolve_session(session, "not-a-token") is None and resolve_session(session, None) is None
        later = utcnow() + timedelta(hours=9)
        assert resolve_session(session, idle, idle=timedelta(hours=8), now=later) is None
        assert resolve_session(session, old, idle=timedelta(days=30), now=utcnow() + timedelta(days=8)) is None
        assert revoke_session(session, revoked) and resolve_session(session, revoked) is None
        user.active = False
        assert resolve_session(session, live) is None
        stored = session.scalars(select(WebSession.token_hash)).all()
        assert live not in stored  # only the token's SHA-256 is kept


def test_pages_redirect_to_sign_in_and_come_back_after_it(web: TestClient, loop: FeedbackLoop) -> None:
    with loop.session() as session:
        add_user(session, "pm@example.com", "pm", password=PASSWORD)
        session.commit()
    for path in ("/", "/triage", "/inbox", "/themes/1", "/live"):
        answer = web.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/signin?next="), path
    wrong = password_sign_in(web, "pm@example.com", "not the password")
    assert wrong.status_code == 401 and "do not match" in wrong.text
    assert SESSION_COOKIE not in wrong.headers.get("set-cookie", "")
    signed = password_sign_in(web, "pm@example.com", PASSWORD, next_path="/triage")
    assert signed.status_code == 303 and signed.headers["location"] == "/triage"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax") and "Secure" not in cookie
    assert web.get("/triage").status_code == 200
    # An open redirect is refused: after sign-in only paths on this server.
    web.cookies.clear()
    assert password_sign_in(web, "pm@example.com", PASSWORD, next_path="//evil.example/x").headers["location"] == "/"


def test_the_cookie_is_secure_off_loopback_and_sign_out_ends_the_session(loop: FeedbackLoop) -> None:
    with loop.session() as session:
        add_user(session, "pm@example.com", "pm", password=PASSWORD)
        session.commit()
    with TestClient(create_app(loop.settings, loop=loop), base_url="https://feedback.example.com") as client:
        signed = password_sign_in(client, "pm@example.com", PASSWORD)
        assert signed.status_code == 303 and "Secure" in signed.headers["set-cookie"]
        page = client.get("/")
        assert page.status_code == 200
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        cookie = client.cookies[SESSION_COOKIE]
        assert client.post("/signout", data={}, follow_redirects=False).status_code == 403  # no token: refused
        out = client.post("/signout", data={"csrf_token": csrf.group(1)}, follow_redirects=False)
        assert out.status_code == 303
        client.cookies.set(SESSION_COOKIE, cookie)  # the old cookie, replayed
        assert client.get("/", follow_redirects=False).status_code == 303


def test_the_sign_in_form_refuses_posts_without_its_token_and_limits_failures(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FEEDBACKLOOP_RATE_LIMIT_FAILED_AUTH_PER_ADDRESS", "3/minute")
    loop = make_loop(f"sqlite:///{tmp_path / 'limits.db'}")
    with loop.session() as session:
        add_user(session, "pm@example.com", "pm", password=PASSWORD)
        session.commit()
    with TestClient(create_app(loop.settings, loop=loop), base_url="http://127.0.0.1") as client:
        forged = client.post("/signin", data={"email": "pm@example.com", "password": PASSWORD},
                             follow_redirects=False)
        assert forged.status_code == 403
        for _ in range(3):
            assert password_sign_in(client, "pm@example.com", "wrong guess!!").status_code == 401
        limited = password_sign_in(client, "pm@example.com", PASSWORD)
        assert limited.status_code == 429 and "Too many failed sign-ins" in limited.text
    loop.close()


def test_forms_need_the_session_csrf_token_and_this_origin(web: TestClient, loop: FeedbackLoop) -> None:
    build_themes(loop, CHECKOUT + LOGIN)
    with loop.session() as session:
        theme = session.scalars(select(Theme).order_by(Theme.id)).first()
        assert theme is not None
        theme_id, label = theme.id, theme.label
    csrf = sign_in(web, loop)
    rename = {"action": "rename", "label": "Checkout is broken"}
    assert web.post(f"/themes/{theme_id}/apply", data=rename, follow_redirects=False).status_code == 403
    wrong = web.post(f"/themes/{theme_id}/apply", data={**rename, "csrf_token": "x" * 43}, follow_redirects=False)
    assert wrong.status_code == 403
    foreign = web.post(f"/themes/{theme_id}/apply", data={**rename, "csrf_token": csrf},
                       headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert foreign.status_code == 403 and "another site" in foreign.text
    with loop.session() as session:
        assert session.get(Theme, theme_id).label == label  # type: ignore[union-attr]
    done = web.post(f"/themes/{theme_id}/apply", data={**rename, "csrf_token": csrf},
                    headers={"Origin": "http://127.0.0.1"}, follow_redirects=False)
    assert done.status_code == 303
    with loop.session() as session:
        assert session.get(Theme, theme_id).label == "Checkout is broken"  # type: ignore[union-attr]
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "rename")).one()
        assert entry.actor == "user:pm@example.com"


def test_viewers_read_but_do_not_change_and_owners_see_their_team(web: TestClient, loop: FeedbackLoop) -> None:
    build_themes(loop, CHECKOUT + LOGIN)
    with loop.session() as session:
        theme_id = session.scalars(select(Theme.id)).first()
        add_user(session, "owner@example.com", "owner", password=PASSWORD, owner="payments")
        session.commit()
    csrf = sign_in(web, loop, "viewer@example.com", "viewer")
    page = web.get(f"/themes/{theme_id}")
    assert page.status_code == 200 and "Rename…" not in page.text
    assert web.get(f"/themes/{theme_id}/preview?action=rename&label=x").status_code == 403
    assert web.post(f"/themes/{theme_id}/apply", data={"action": "ignore", "csrf_token": csrf},
                    follow_redirects=False).status_code == 403
    sign_in(web, loop, "owner@example.com")
    inbox = web.get("/inbox")
    assert inbox.status_code == 200 and "Inbox of payments" in inbox.text


def test_an_oidc_identity_is_its_issuer_and_subject(any_loop: FeedbackLoop) -> None:
    issuer = "https://id.example.com"
    with any_loop.session() as session:
        first = oidc_user(session, issuer, "sub-1", "New@Example.com", "New Person", "viewer")
        assert (first.email, first.role, first.password_hash) == ("new@example.com", "viewer", None)
        assert oidc_user(session, issuer, "sub-1", "changed@example.com", None, "pm") is first
        local = add_user(session, "local@example.com", "pm", password=PASSWORD)
        assert oidc_user(session, issuer, "sub-2", "local@example.com", None, "viewer") is local
        assert local.role == "pm"  # linking keeps the account's role
        with pytest.raises(Conflict):
            oidc_user(session, "https://other.example.com", "sub-9", "local@example.com", None, "viewer")
        with pytest.raises(InvalidInput):
            oidc_user(session, issuer, "sub-3", None, None, "viewer")
        assert users.can_edit("pm") and not users.can_edit("owner") and not users.can_edit("viewer")
