"""Faults for the polled channels' tests: a poller that dies mid-round, in process or as a SIGKILLed
``feedbackloop channels poll``, while the recorded server holds the request it died waiting for."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from core.types import PollPage, PollRequest
from tests.support.recorded_http import Recorded, SeenRequest


class Killed(BaseException):
    """The process dying mid-round: nothing after it runs, nothing catches it."""


def kill_on_fetch(monkeypatch: pytest.MonkeyPatch, module: ModuleType, call: int, after_fetching: bool) -> None:
    """``module.fetch``'s ``call``-th call dies, before asking the source or after its answer came."""
    real: Callable[[PollRequest], PollPage] = module.fetch
    calls = {"count": 0}

    def fetch(request: PollRequest) -> PollPage:
        calls["count"] += 1
        if calls["count"] != call:
            return real(request)
        if after_fetching:
            real(request)
        raise Killed

    monkeypatch.setattr(module, "fetch", fetch)


def held_until(release: threading.Event, arrived: threading.Event, answer: Recorded) -> Callable[[SeenRequest], Any]:
    """A responder that signals the request arrived, then waits (the poller is killed meanwhile)."""
    def respond(request: SeenRequest) -> Recorded:
        arrived.set()
        release.wait(timeout=120)
        return answer
    return respond


def sigkill_poll_while_held(channel: str, sqlite_url: str, cwd: Path, arrived: threading.Event,
                            release: threading.Event) -> None:
    """Run ``feedbackloop channels poll CHANNEL`` in its own process and SIGKILL it once the held request
    has arrived (everything before it committed); then let the server answer whoever asks next."""
    env = {**os.environ, "FEEDBACKLOOP_DATABASE_URL": sqlite_url, "FEEDBACKLOOP_LOAD_PLUGINS": "",
           "FEEDBACKLOOP_OUTBOUND_ALLOW_PRIVATE": "127.0.0.1"}
    poller = subprocess.Popen([sys.executable, "-m", "core", "channels", "poll", channel], env=env, cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not arrived.wait(timeout=0.2):
            assert poller.poll() is None, poller.stderr.read().decode() if poller.stderr else "exited"
            assert time.monotonic() < deadline, "the poller never sent the request it was to die waiting for"
        os.kill(poller.pid, signal.SIGKILL)
        assert poller.wait(timeout=30) == -signal.SIGKILL
    finally:
        release.set()
        if poller.poll() is None:
            poller.kill()
        if poller.stderr:
            poller.stderr.close()
