"""The main job end to end, as `make run` runs it: real model, real server, real HTTP."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_run_demo_serves_at_least_20_labelled_themes_with_owners(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FEEDBACKLOOP_LOAD_PLUGINS": "",
           "FEEDBACKLOOP_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}"}
    env.pop("FEEDBACKLOOP_RULES_FILE", None)
    log = (tmp_path / "run.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "core", "run", "--demo", "--port", str(port)],
                               cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        page = None
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and process.poll() is None:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(1)
        assert page is not None, (tmp_path / "run.log").read_text()[-3000:]
        assert page.status_code == 200
        rows = re.findall(r'<tr class="theme-row">(.*?)</tr>', page.text, flags=re.S)
        assert len(rows) >= 20
        for row in rows:
            assert 'class="owner"' in row, row  # every theme has an owner
            label = re.search(r'<a href="/themes/\d+">(.*?)</a>', row)
            assert label is not None and label.group(1).strip() and label.group(1) != "Untitled theme"
        owners = set(re.findall(r'<span class="owner">(.*?)</span>', page.text))
        assert {"cards", "payments-ops", "it-security"} <= owners
        inbox = httpx.get(f"http://127.0.0.1:{port}/inbox", timeout=5).text
        assert inbox.count("[feedbackloop]") == len(rows)  # one ticket per theme in the owners' inboxes
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C stops the server cleanly
        try:
            process.wait(timeout=30)
        finally:
            process.kill()
    output = (tmp_path / "run.log").read_text()
    assert "themes" in output and process.returncode == 0, output[-3000:]
