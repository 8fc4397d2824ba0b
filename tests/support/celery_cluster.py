"""Real Celery workers for the tests: ``feedbackloop worker`` and ``feedbackloop beat`` subprocesses on a
broker and PostgreSQL, the tests' plugin installed the way a third-party one is (an entry point, in a
folder put on the processes' path), and the ledger server the plugin's target files tickets on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from core.tasks.broker import broker_state
from tests.support.env import ADMIN_KEY, IN_CI
from tests.support.http_fakes import JsonHandler, serve
from tests.support.server import FEEDBACKLOOP

REPOSITORY = Path(__file__).resolve().parents[2]
RABBITMQ_URL = os.environ.get("FEEDBACKLOOP_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("FEEDBACKLOOP_TEST_REDIS", "redis://127.0.0.1:6379/0")
BROKERS = {"rabbitmq": RABBITMQ_URL, "redis": REDIS_URL}


def require_broker(url: str) -> None:
    state = broker_state(url)
    if state != "ok":
        if IN_CI:
            pytest.fail(f"the broker {url} is required with CI=true but is {state}")
        pytest.skip(f"broker {url} {state} (runs, never skips, with CI=true)")


class Ledger:
    """Tickets by idempotency key, created only when the key is new; every call kept as (key, caller pid).

    With ``hold_first``, the first call creates its ticket and then never answers until ``release()``:
    a worker that is killed there has made the ticket but not recorded it.
    """

    def __init__(self, hold_first: bool = False) -> None:
        self.tickets: dict[str, str] = {}
        self.calls: list[tuple[str, int]] = []
        self.call_times: list[float] = []
        self.held = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._hold_first = hold_first
        ledger = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.read_json()
                with ledger._lock:
                    ledger.calls.append((body["key"], int(self.headers.get("X-Worker-Pid", "0"))))
                    ledger.call_times.append(time.time())
                    ref = ledger.tickets.setdefault(body["key"], f"T-{len(ledger.tickets) + 1}")
                    hold, ledger._hold_first = ledger._hold_first, False
                if hold:
                    ledger.held.set()
                    ledger._release.wait(60)
                    return  # no answer: the caller is dead by now
                self.send_json(200, {"ref": ref})

        self.server, self.url = serve(Handler)

    def timed_calls(self) -> list[tuple[str, int, float]]:
        return [(key, pid, at) for (key, pid), at in zip(self.calls, self.call_times, strict=True)]

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


def plugin_site(folder: Path) -> Path:
    """A folder that, on PYTHONPATH, makes tests/plugins/celery_kit.py an installed plugin named celery_kit."""
    dist = folder / "celery_kit-0.0.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: celery-kit\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text("[feedbackloop]\ncelery_kit = tests.plugins.celery_kit\n")
    return folder


def cluster_env(database_url: str, broker_url: str, folder: Path) -> dict[str, str]:
    """The environment of every process of one test's cluster; the queues' names are the test's own."""
    return {**os.environ, "FEEDBACKLOOP_DATABASE_URL": database_url, "FEEDBACKLOOP_BROKER_URL": broker_url,
            "FEEDBACKLOOP_BROKER_QUEUE_PREFIX": f"test-{uuid.uuid4().hex[:10]}-",
            "FEEDBACKLOOP_LOAD_PLUGINS": "celery_kit", "FEEDBACKLOOP_EMBEDDING_MODEL": "hash",
            "FEEDBACKLOOP_ADMIN_KEY": ADMIN_KEY, "FEEDBACKLOOP_OUTBOUND_ALLOW_PRIVATE": "127.0.0.1",
            "FEEDBACKLOOP_SECRET_ENV_ALLOWED": "*", "FEEDBACKLOOP_BEAT_SWEEP_S": "1",
            "FEEDBACKLOOP_DELIVERY_BACKOFF_S": "1", "FEEDBACKLOOP_RATE_LIMIT_PER_KEY": "", "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join([str(REPOSITORY), str(plugin_site(folder / "site"))])}


class Cluster:
    """Worker and beat processes, each in its own process group (a SIGKILL takes its pool processes too)."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start_worker(self, name: str, *options: str) -> subprocess.Popen[bytes]:
        return self._start(name, "worker", f"--name={name}@localhost", "--loglevel=INFO", *options)

    def start_beat(self) -> subprocess.Popen[bytes]:
        return self._start("beat", "beat", f"--schedule-file={self.folder / 'beat-schedule'}")

    def _start(self, name: str, *argv: str) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("wb")
        process = subprocess.Popen([str(FEEDBACKLOOP), *argv], env=self.env, cwd=self.folder, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def wait_ready(self, *names: str, timeout_s: float = 60.0) -> None:
        wait_until(lambda: all(" ready." in self.log(name) for name in names), timeout_s,
                   f"workers {names} ready", lambda: "\n".join(self.log(name)[-3000:] for name in names))

    def group_of(self, pid: int) -> str | None:
        """The name of the process (worker or one of its pool processes) with this pid."""
        with suppress(ProcessLookupError):
            group = os.getpgid(pid)
            return next((name for name, process in self.processes.items() if process.pid == group), None)
        return None

    def kill(self, name: str) -> None:
        process = self.processes[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():  # the main process stops its pool itself (a warm shutdown)
            with suppress(ProcessLookupError):
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def cluster(env: dict[str, str], folder: Path) -> Iterator[Cluster]:
    running = Cluster(env, folder)
    try:
        yield running
    finally:
        running.stop()


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str,
               diagnosis: Callable[[], str] | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout_s:.0f} s: {what}\n{diagnosis() if diagnosis else ''}")


def dumped(value: Any) -> str:
    return json.dumps(value, default=str)[:2000]
