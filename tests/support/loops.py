"""A ``FeedbackLoop`` for tests (fake embedder, no installed plugins) and what runs beside it: a worker
thread and a rules file with a spike rule."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from core.loop import FeedbackLoop
from core.plugin_manager import make_plugin_manager
from core.settings import Settings
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


def make_loop(url: str, **overrides: Any) -> FeedbackLoop:
    settings = Settings(database_url=url, admin_key=ADMIN_KEY, load_plugins="", **overrides)
    loop = FeedbackLoop(settings, pm=make_plugin_manager(load_installed=False), embedder=HashEmbedder())
    loop.migrate()
    return loop


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
