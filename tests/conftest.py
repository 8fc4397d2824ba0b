"""Fixtures: a fresh database, plugin manager and app per test; a fake embedder for speed.

Tests that need the real model load it themselves (it ships in a package). PostgreSQL runs when
reachable, and with ``CI=true`` it must be: there its tests fail instead of skipping.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from api.app import create_app
from core.loop import FeedbackLoop
from core.plugin_manager import make_plugin_manager
from core.settings import Settings, get_settings
from core.worker import run_round

ADMIN_KEY = "test-admin-key"
POSTGRES_ADMIN_URL = os.environ.get("FEEDBACKLOOP_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
IN_CI = os.environ.get("CI", "").lower() == "true"


class HashEmbedder:
    """A deterministic bag-of-words embedder: texts sharing words land close together."""

    name = "hash"

    def embed(self, texts: Sequence[str], progress: object = None) -> np.ndarray:
        vectors = np.zeros((len(texts), 64), dtype=np.float32)
        for row, value in enumerate(texts):
            for word in value.lower().split():
                digest = hashlib.md5(word.strip(".,!?").encode()).digest()
                vectors[row, digest[0] % 64] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1
        return vectors / norms


def postgres_available() -> bool:
    try:
        with create_engine(POSTGRES_ADMIN_URL).connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


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
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


def make_loop(url: str, **overrides: object) -> FeedbackLoop:
    settings = Settings(database_url=url, admin_key=ADMIN_KEY, load_plugins="", **overrides)
    loop = FeedbackLoop(settings, pm=make_plugin_manager(load_installed=False))
    loop._embedder = HashEmbedder()
    loop.migrate()
    return loop


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


@contextmanager
def background_worker(loop: FeedbackLoop, pause_s: float = 0.2) -> Iterator[None]:
    """The worker's rounds in a thread (as `feedbackloop deliveries work` runs them) while the block runs."""
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            run_round(loop, poll_every_s=3600)
            time.sleep(pause_s)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def write_spike_rules(path: Path, chat_url: str, name: str, keyword: str, threshold: float = 3.0) -> Path:
    """A rules file: everything to "support", and a spike rule that sends bursts about ``keyword`` to chat."""
    path.write_text(f'[default]\nowner = "support"\n\n[[spike]]\nname = "{name}"\nowner = "payments-ops"\n'
                    f'target = "chat_webhook"\ntarget_options = {{ url = "{chat_url}" }}\nthreshold = {threshold}\n'
                    f'min_recent = 3\ncooldown_minutes = 30\nkeywords_any = ["{keyword}"]\n')
    return path
