"""OpenID Connect sign-in end to end: Chromium, a real ``feedbackloop serve`` and a real provider (oidc-provider).

A person presses "Sign in with SSO", signs in at the provider and lands on the workspace, signed in, with an
account made on first sign-in with the configured role. Callbacks that must not sign anyone in are refused
with a 400 page: a wrong or missing state, an ID token whose nonce is not the pending sign-in's, a replay.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import BrowserContext, Page, Route
from sqlalchemy import create_engine, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from api.pages.oidc import STATE_COOKIE, issuer_settings
from core.models import AuditEntry, PendingSignIn, User, WebSession
from core.outbound import OutboundRefused, policy_for
from core.settings import Settings
from tests.support.browser import PageFactory, assert_accessible, screenshot
from tests.support.env import ADMIN_KEY
from tests.support.oidc_provider import OidcProvider, running_oidc_provider
from tests.support.server import free_port, start_server


@dataclass(frozen=True)
class Workspace:
    url: str
    engine: Engine
    provider: OidcProvider

    @property
    def callback_url(self) -> str:
        return f"{self.url}/auth/oidc/callback"


@contextmanager
def sso_workspace(tmp_path: Path, claims_in: str = "id_token", default_role: str | None = None) -> Iterator[Workspace]:
    """The provider, and the workspace server on file SQLite configured to sign in with it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    database_url = f"sqlite:///{tmp_path / 'workspace.db'}"
    with running_oidc_provider([f"{url}/auth/oidc/callback"], claims_in=claims_in) as provider:
        env = {**os.environ, "FEEDBACKLOOP_DATABASE_URL": database_url, "FEEDBACKLOOP_LOAD_PLUGINS": "",
               "FEEDBACKLOOP_ADMIN_KEY": ADMIN_KEY, "FEEDBACKLOOP_PUBLIC_URL": url,
               "FEEDBACKLOOP_OIDC_ISSUER": provider.issuer, "FEEDBACKLOOP_OIDC_CLIENT_ID": provider.client_id,
               "FEEDBACKLOOP_OIDC_CLIENT_SECRET": provider.client_secret,
               "FEEDBACKLOOP_OIDC_BUTTON_LABEL": "Sign in with SSO"}
        if default_role is not None:
            env["FEEDBACKLOOP_OIDC_DEFAULT_ROLE"] = default_role
        server = start_server(env, port, tmp_path)
        engine = create_engine(database_url)
        try:
            yield Workspace(url, engine, provider)
        finally:
            engine.dispose()
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def sign_in_at_provider(page: Page, login: str) -> None:
    """The provider's development pages: any login and password, then consent."""
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password at all")
    page.click("button[type=submit]")
    page.click("button[type=submit]")  # consent: "Continue"


def press_sso_button(page: Page) -> None:
    page.goto("/")
    page.wait_for_url(re.compile(r"/signin\?next=%2F$"))
    page.get_by_role("link", name="Sign in with SSO").click()
    page.wait_for_selector("input[name=login]")


def hold_callback(page: Page, workspace: Workspace) -> list[str]:
    """Stops the browser before the callback: the provider's redirect to it is recorded, not followed, and
    the test decides what reaches the workspace.

    Playwright routes only the first request of a redirect chain, and the callback is the end of one (the
    consent form's post, then the provider's resume URL), so the consent post is routed and its chain
    followed here, with the browser context's cookies, up to the redirect to the workspace.
    """
    held: list[str] = []

    def follow_consent(route: Route) -> None:
        if route.request.method != "POST" or "prompt=consent" not in (route.request.post_data or ""):
            route.continue_()
            return
        response = route.fetch(max_redirects=0)
        for _hop in range(5):
            location = response.headers.get("location")
            if location is None:
                break
            target = urljoin(response.url, location)
            if target.startswith(f"{workspace.callback_url}?"):
                held.append(target)
                route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>held</title>")
                return
            response = page.context.request.get(target, max_redirects=0)
        route.fulfill(response=response)

    page.route(re.compile(re.escape(workspace.provider.issuer) + "/"), follow_consent)
    return held


def release_callback(page: Page, workspace: Workspace) -> None:
    page.unroute(re.compile(re.escape(workspace.provider.issuer) + "/"))


def with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = {key: value for key, value in parse_qsl(parts.query)}
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def users(workspace: Workspace) -> list[User]:
    with Session(workspace.engine) as session:
        return list(session.scalars(select(User)))


def count(workspace: Workspace, model: type) -> int:
    with workspace.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(model)).scalar_one())


def session_cookie(context: BrowserContext) -> dict[str, object] | None:
    found = [cookie for cookie in context.cookies() if cookie["name"] == "feedbackloop_session"]
    return dict(found[0]) if found else None


def test_sso_sign_in_lands_signed_in_with_an_account_of_the_default_role(tmp_path: Path,
                                                                         page_for: PageFactory) -> None:
    with sso_workspace(tmp_path) as workspace, page_for(workspace.url) as page:
        page.goto("/signin")
        screenshot(page, "oidc-signin-page")
        assert_accessible(page)
        press_sso_button(page)
        assert page.url.startswith(f"{workspace.provider.issuer}/interaction/")
        screenshot(page, "oidc-provider-login")
        sign_in_at_provider(page, "grace.hopper@example.test")
        page.wait_for_url(f"{workspace.url}/")
        assert page.get_by_text("grace hopper").first.is_visible()
        assert page.get_by_text("(viewer)").is_visible()
        screenshot(page, "oidc-signed-in-overview")
        assert_accessible(page)

        cookie = session_cookie(page.context)
        assert cookie is not None and cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
        assert not [c for c in page.context.cookies() if c["name"] == STATE_COOKIE]

        [user] = users(workspace)
        assert (user.email, user.role, user.name) == ("grace.hopper@example.test", "viewer", "grace hopper")
        assert (user.oidc_issuer, user.oidc_subject) == (workspace.provider.issuer, "grace.hopper@example.test")
        assert user.password_hash is None and user.last_sign_in_at is not None and user.active
        assert count(workspace, WebSession) == 1 and count(workspace, PendingSignIn) == 0
        with workspace.engine.connect() as connection:
            actions = connection.execute(select(AuditEntry.action, AuditEntry.details)
                                         .where(AuditEntry.actor == "user:grace.hopper@example.test")).all()
        assert [(action, details["method"]) for action, details in actions] == [("sign_in", "oidc")]

        # A later sign-in (new browser, new provider session) is the same account, not a second one.
        with page_for(workspace.url) as again:
            press_sso_button(again)
            sign_in_at_provider(again, "grace.hopper@example.test")
            again.wait_for_url(f"{workspace.url}/")
        assert len(users(workspace)) == 1 and count(workspace, WebSession) == 2


def test_email_from_userinfo_and_the_configured_role(tmp_path: Path, page_for: PageFactory) -> None:
    """A provider that keeps email out of the ID token (the spec's default): userinfo supplies it."""
    with sso_workspace(tmp_path, claims_in="userinfo", default_role="pm") as workspace, \
            page_for(workspace.url) as page:
        press_sso_button(page)
        sign_in_at_provider(page, "alan")
        page.wait_for_url(f"{workspace.url}/")
        assert page.get_by_text("(pm)").is_visible()
        [user] = users(workspace)
        assert (user.email, user.role, user.oidc_subject) == ("alan@example.test", "pm", "alan")


def test_wrong_or_missing_state_is_refused(tmp_path: Path, page_for: PageFactory) -> None:
    with sso_workspace(tmp_path) as workspace, page_for(workspace.url) as page:
        held = hold_callback(page, workspace)
        press_sso_button(page)
        sign_in_at_provider(page, "mallory@example.test")
        page.wait_for_function("document.title === 'held'")
        release_callback(page, workspace)
        [callback] = held
        assert "code=" in callback and "state=" in callback

        refused = page.goto(with_query(callback, state="not-the-state-this-browser-started"))
        assert refused is not None and refused.status == 400
        assert page.get_by_role("alert").inner_text().startswith("This sign-in's state does not match")
        screenshot(page, "oidc-refused-wrong-state")
        assert_accessible(page)

        refused = page.goto(with_query(callback, state=None))
        assert refused is not None and refused.status == 400
        assert "sent no state back" in page.get_by_role("alert").inner_text()

        # The right state in another browser (no state cookie): a link cannot sign someone else in.
        with page_for(workspace.url) as other:
            refused = other.goto(callback)
            assert refused is not None and refused.status == 400
            assert "does not match the one this browser started" in other.get_by_role("alert").inner_text()
        assert session_cookie(page.context) is None and users(workspace) == []


def test_a_nonce_that_does_not_match_is_refused(tmp_path: Path, page_for: PageFactory) -> None:
    """A real ID token carrying the nonce of the request, presented for a pending sign-in whose nonce
    differs (as a token injected from another sign-in would be), is refused."""
    with sso_workspace(tmp_path) as workspace, page_for(workspace.url) as page:
        held = hold_callback(page, workspace)
        press_sso_button(page)
        sign_in_at_provider(page, "eve@example.test")
        page.wait_for_function("document.title === 'held'")
        release_callback(page, workspace)
        with workspace.engine.begin() as connection:
            changed = connection.execute(update(PendingSignIn).values(nonce="a-nonce-from-another-sign-in"))
            assert changed.rowcount == 1

        refused = page.goto(held[0])
        assert refused is not None and refused.status == 400
        message = page.get_by_role("alert").inner_text()
        assert "ID token did not check out" in message and "nonce" in message
        assert session_cookie(page.context) is None and users(workspace) == []
        assert count(workspace, PendingSignIn) == 0  # used up: the same callback cannot be tried again


def test_a_replayed_callback_is_refused(tmp_path: Path, page_for: PageFactory) -> None:
    with sso_workspace(tmp_path) as workspace, page_for(workspace.url) as page:
        held = hold_callback(page, workspace)
        press_sso_button(page)
        sign_in_at_provider(page, "ada@example.test")
        page.wait_for_function("document.title === 'held'")
        release_callback(page, workspace)
        [callback] = held
        state = dict(parse_qsl(urlsplit(callback).query))["state"]

        page.goto(callback)
        page.wait_for_url(f"{workspace.url}/")
        assert session_cookie(page.context) is not None

        # The same callback again, even with the state cookie put back: the pending sign-in is gone.
        with page_for(workspace.url) as replay:
            replay.context.add_cookies([{"name": STATE_COOKIE, "value": state, "domain": "127.0.0.1",
                                         "path": "/auth/oidc", "httpOnly": True, "sameSite": "Lax"}])
            refused = replay.goto(callback)
            assert refused is not None and refused.status == 400
            assert "already used or has expired" in replay.get_by_role("alert").inner_text()
            assert session_cookie(replay.context) is None
        assert count(workspace, WebSession) == 1


def test_outbound_calls_allow_the_issuer_host_and_no_other_private_one() -> None:
    settings = Settings(oidc_issuer="http://127.0.0.1:9/", oidc_client_id="c", outbound_allow_private="redmine.lan")
    policy = policy_for(issuer_settings(settings))
    policy.check_url("http://127.0.0.1:9/.well-known/openid-configuration", "test")
    assert policy.private_hosts == {"redmine.lan"}  # what the admin allowed stays allowed
    for refused in ("http://127.0.0.2/", "http://10.0.0.1/token", "http://[::1]:9/"):
        with pytest.raises(OutboundRefused):
            policy.check_url(refused, "test")
    # A named issuer: that name may resolve to a private address, and no other name.
    named = policy_for(issuer_settings(settings.model_copy(update={"oidc_issuer": "https://IdP.lan/realms/x"})))
    assert named.private_hosts == {"redmine.lan", "idp.lan"} and named.private_networks == ()
    # Without the issuer, the admin's policy is unchanged: loopback stays refused.
    with pytest.raises(OutboundRefused):
        policy_for(settings).check_url("http://127.0.0.1:9/", "test")
    # A restricted allow-list gains the issuer's host, and only that.
    restricted = policy_for(issuer_settings(settings.model_copy(update={"outbound_allowed": "jira.example.com"})))
    assert restricted.hosts == ("jira.example.com", "127.0.0.1")


def test_without_an_issuer_there_is_no_sso(client: TestClient) -> None:
    for path in ("/auth/oidc/start", "/auth/oidc/callback?state=x&code=y"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 404 and "Single sign-on is not configured" in response.text
    assert "Sign in with SSO" not in client.get("/signin").text
