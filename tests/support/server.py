"""A real ``feedbackloop serve`` process for the tests that kill one (SIGKILL) and start it again."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

FEEDBACKLOOP = Path(sys.executable).parent / "feedbackloop"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(env: dict[str, str], port: int, cwd: Path, timeout_s: float = 90.0) -> subprocess.Popen[bytes]:
    """The server on 127.0.0.1:``port``, returned once ``/healthz`` answers.

    It runs in ``cwd`` (a test's folder), where it keeps what it creates on first start (its pseudonym key).
    """
    server = subprocess.Popen([str(FEEDBACKLOOP), "serve", "--port", str(port), "--no-access-log"], env=env,
                              cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, "the server exited on start"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise AssertionError("the server did not come up")
