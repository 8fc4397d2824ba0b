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
        signin = None
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and process.poll() is None:
            try:
                signin = httpx.get(f"http://127.0.0.1:{port}/signin", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(1)
        assert signin is not None, (tmp_path / "run.log").read_text()[-3000:]
        output = (tmp_path / "run.log").read_text()
        # Its closing lines: where to sign in, and the account made for the demo.
        assert f"sign in at http://127.0.0.1:{port}/signin" in output, output[-3000:]
        account = re.search(r"Demo account \(made for this demo only\): (\S+)  password: (\S+)", output)
        assert account is not None, output[-3000:]
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        assert client.get("/").status_code == 303  # nothing without signing in
        form = client.get("/signin")
        token = re.search(r'name="form_token" value="([^"]+)"', form.text)
        assert token is not None
        signed_in = client.post("/signin", data={"form_token": token.group(1), "email": account.group(1),
                                                 "password": account.group(2), "next": "/"})
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
        page = client.get("/", params={"window": "all", "per_page": "200"})  # every theme on one page
        assert page.status_code == 200
        rows = re.findall(r'<tr class="theme-row">(.*?)</tr>', page.text, flags=re.S)
        assert len(rows) >= 20
        for row in rows:
            assert 'class="owner"' in row, row  # every theme has an owner
            label = re.search(r'<a href="/themes/\d+">(.*?)</a>', row)
            assert label is not None and label.group(1).strip() and label.group(1) != "Untitled theme"
        owners = set(re.findall(r'<span class="owner">(.*?)</span>', page.text))
        assert {"cards", "payments-ops", "it-security"} <= owners
        inbox = client.get("/inbox").text
        assert inbox.count("[feedbackloop]") == len(rows)  # one ticket per theme in the owners' inboxes
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C stops the server cleanly
        try:
            process.wait(timeout=30)
        finally:
            process.kill()
    output = (tmp_path / "run.log").read_text()
    assert "themes" in output and process.returncode == 0, output[-3000:]
