"""The admin pages' test harness: a seeded workspace with an admin, clients signed in through the form."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from core.auth.users import find_user
from core.loop import FeedbackLoop
from core.models import AuditEntry, User
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
