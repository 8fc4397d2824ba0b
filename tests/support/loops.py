"""A ``FeedbackLoop`` for tests (fake embedder, no installed plugins) and what runs beside it: a worker
thread and a rules file with a spike rule."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.engine import make_url

from core.loop import FeedbackLoop
from core.plugin_manager import make_plugin_manager
from core.settings import Settings, get_settings
from core.worker import run_round
from tests.support.env import ADMIN_KEY


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


def secrets_dir_for(url: str) -> Path:
    """Where a test database's pseudonym key lives: beside a SQLite file (a test's tmp_path, where the CLI
    and a server started on the same file look too), else a temporary folder of that database's own."""
    database = make_url(url).database if url.startswith("sqlite") else None
    if database and database != ":memory:":
        return Path(database).parent / ".feedbackloop"
    return Path(tempfile.gettempdir()) / "feedbackloop-test-secrets" / hashlib.sha256(url.encode()).hexdigest()[:16]


def make_loop(url: str, **overrides: Any) -> FeedbackLoop:
    if "FEEDBACKLOOP_SECRETS_DIR" not in os.environ:  # set per test by conftest, so the CLI finds the same key
        overrides.setdefault("secrets_dir", secrets_dir_for(url))
    # The fakes listen on 127.0.0.1, and tests name their own variables (FORUM_SECRET...): both refused by
    # default. feedbackloop's own settings stay refused whatever the patterns (tests/test_outbound.py).
    overrides.setdefault("outbound_allow_private", "127.0.0.1")
    overrides.setdefault("secret_env_allowed", "*")
    settings = Settings(database_url=url, admin_key=ADMIN_KEY, load_plugins="", **overrides)
    loop = FeedbackLoop(settings, pm=make_plugin_manager(load_installed=False), embedder=HashEmbedder())
    loop.migrate()
    return loop


@pytest.fixture
def process_allows_test_destinations(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Status polls (a target's ``read_status``) have no request to carry a loop's settings and read the
    process's: give them what ``make_loop`` gives a loop."""
    monkeypatch.setenv("FEEDBACKLOOP_OUTBOUND_ALLOW_PRIVATE", "127.0.0.1")
    monkeypatch.setenv("FEEDBACKLOOP_SECRET_ENV_ALLOWED", "*")
    get_settings.cache_clear()
    yield
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
