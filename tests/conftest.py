"""Fixtures: a fresh database, plugin manager and app per test; a fake embedder for speed.

Tests that need the real model load it themselves (it ships in a package). PostgreSQL runs when
reachable, and with ``CI=true`` it must be: there its tests fail instead of skipping. The helpers
behind these fixtures live in ``tests/support``; test modules import them from there.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from api.app import create_app
from core.loop import FeedbackLoop
from core.settings import get_settings
from tests.support.admin_pages import admin, any_admin  # noqa: F401 (fixtures: a seeded workspace with an admin)
from tests.support.browser import chromium_browser, page_for  # noqa: F401 (fixtures: Chromium, a page per test)
from tests.support.env import ADMIN_KEY, IN_CI, POSTGRES_ADMIN_URL, postgres_available
from tests.support.loops import make_loop


@pytest.fixture(autouse=True)
def enrichment_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Enrichment by VADER and the rules (plugins/sentiment.py, plugins/kind.py) alone, whatever the environment
    says, for speed: the MiniLM re-scoring (plugins/sentiment_model.py, on by default) is tested in
    tests/test_sentiment_model.py."""
    monkeypatch.setenv("FEEDBACKLOOP_ENRICHMENT_MODEL", "rules")


@pytest.fixture(autouse=True)
def secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own folder for the pseudonym key, shared by its loops, its CLI runs and the servers it
    starts (they inherit the environment): tests never write a key into the repository."""
    folder = tmp_path / ".feedbackloop-secrets"
    monkeypatch.setenv("FEEDBACKLOOP_SECRETS_DIR", str(folder))
    return folder


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    if not postgres_available():
        if IN_CI:
            pytest.fail(f"PostgreSQL is required with CI=true but {POSTGRES_ADMIN_URL} is not reachable")
        pytest.skip("PostgreSQL not reachable (runs, never skips, with CI=true)")
    name = f"fbl_test_{uuid.uuid4().hex[:12]}"
    server = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def loop(sqlite_url: str) -> Iterator[FeedbackLoop]:
    feedback_loop = make_loop(sqlite_url)
    yield feedback_loop
    feedback_loop.close()


@pytest.fixture
def any_loop(database_url: str) -> Iterator[FeedbackLoop]:
    """The same tests on SQLite and on PostgreSQL."""
    feedback_loop = make_loop(database_url)
    yield feedback_loop
    feedback_loop.close()


@pytest.fixture
def client(loop: FeedbackLoop) -> Iterator[TestClient]:
    with TestClient(create_app(loop.settings, loop=loop)) as test_client:
        yield test_client


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The CLI on a fresh SQLite file (through the environment, as a user runs it); returns its URL."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FEEDBACKLOOP_DATABASE_URL", url)
    monkeypatch.setenv("FEEDBACKLOOP_LOAD_PLUGINS", "")
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()
