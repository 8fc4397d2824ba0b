"""Signing a TestClient in to the workspace without the sign-in form (tests of the form itself use it): a
user (made when missing) and a live web session's cookie."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.pages.common import SESSION_COOKIE
from core.auth.users import add_user, find_user
from core.auth.web_sessions import resolve_session, start_session
from core.loop import FeedbackLoop

PASSWORD = "correct horse battery staple"


def sign_in(client: TestClient, loop: FeedbackLoop, email: str = "pm@example.com", role: str = "pm") -> str:
    """Sign ``client`` in as ``email`` (made with ``role`` and ``PASSWORD`` when missing); returns the
    session's CSRF token for the forms it posts."""
    with loop.session() as session:
        user = find_user(session, email) or add_user(session, email, role, password=PASSWORD)
        token = start_session(session, user, "testclient")
        found = resolve_session(session, token)
        assert found is not None
        csrf = found.csrf_token
    client.cookies.set(SESSION_COOKIE, token)
    return csrf
