"""SIGKILL in the middle of a burst: every delivery that was acknowledged is stored after a restart.

A real ``feedbackloop serve`` process on SQLite takes signed deliveries from a separate load process
(bench/http_load.py) and is killed with SIGKILL while they arrive. After a restart, every delivery
that got a 2xx is in the database; resending the whole burst (what senders do with unacknowledged
deliveries) then leaves exactly one item per delivery.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FEEDBACKLOOP = Path(sys.executable).parent / "feedbackloop"
SECRET = "durability-secret-123"
BURST = 1200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen([str(FEEDBACKLOOP), "serve", "--port", str(port), "--no-access-log"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert server.poll() is None, "the server exited on start"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise AssertionError("the server did not come up")


def load(port: int, acked: Path, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(ROOT / "bench" / "http_load.py"), "--url",
                             f"http://127.0.0.1:{port}/webhooks/burst", "--secret", SECRET, "--mode", "rate",
                             "--rate", str(BURST / seconds), "--seconds", str(seconds), "--connections", "16",
                             "--run", "burst", "--acked", str(acked)], stdout=subprocess.PIPE, text=True)


def stored_ids(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        return [row[0] for row in connection.execute("SELECT external_id FROM feedback_items WHERE channel='burst'")]


def test_acknowledged_deliveries_survive_sigkill(tmp_path: Path) -> None:
    database = tmp_path / "durable.db"
    env = {**os.environ, "FEEDBACKLOOP_DATABASE_URL": f"sqlite:///{database}", "FEEDBACKLOOP_LOAD_PLUGINS": "",
           "BURST_SECRET": SECRET, "HF_HUB_OFFLINE": "1"}
    subprocess.run([str(FEEDBACKLOOP), "channels", "add", "burst", "--plugin", "webhook", "--secret-env",
                    "BURST_SECRET"], env=env, check=True, capture_output=True)
    port = free_port()
    server = start_server(env, port)
    acked_file = tmp_path / "acked.txt"
    try:
        sender = load(port, acked_file, seconds=4.0)
        # Kill once a good part of the burst is acknowledged, so deliveries are in flight at that moment.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(stored_ids(database)) < BURST // 4:
            time.sleep(0.05)
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        figures = json.loads(sender.communicate(timeout=60)[0].strip().splitlines()[-1])
    finally:
        if server.poll() is None:
            server.kill()
    acked = {f"burst-{line}" for line in acked_file.read_text().split()}
    assert acked and figures["errors"] > 0, figures  # the kill did land in the middle of the burst

    server = start_server(env, port)  # restart: SQLite recovers its write-ahead log
    try:
        assert acked <= set(stored_ids(database)), "an acknowledged delivery was lost"
        resend = load(port, tmp_path / "resent.txt", seconds=2.0)
        assert json.loads(resend.communicate(timeout=60)[0].strip().splitlines()[-1])["errors"] == 0
    finally:
        server.terminate()
        server.wait()
    ids = stored_ids(database)
    assert len(ids) == len(set(ids)) == BURST  # senders retrying everything: each delivery once
