"""Event loop under load: how fast ``/healthz`` answers while the biggest requests are being stored.

Starts ``feedbackloop serve`` on a SQLite file, then sends at the same time one maximal webhook
delivery (a signed list of long texts, just under the 1 MiB body limit) and one maximal API batch
(1,000 items of long texts), and asks ``GET /healthz`` every few milliseconds until both are answered.
Prints one JSON line: the /healthz latencies during the load (count, p50, max, in ms), how long each
request of the load took, their statuses, and the machine's load average. The acceptance line of
issue 14 is /healthz within 200 ms; ``tests/test_intake_load.py`` runs the same with a generous bound.

    python bench/healthz_under_load.py [--api-items 1000] [--api-text-chars 18000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from plugins.generic_webhook import sign

FEEDBACKLOOP = Path(sys.executable).parent / "feedbackloop"
SECRET_ENV = "FEEDBACKLOOP_SECRET_LOAD_BENCH"
SECRET = "healthz-under-load-secret"
ADMIN_KEY = "healthz-under-load-admin-key-0123456789"
CHANNEL = "loadhook"
WEBHOOK_LIMIT = 1024 * 1024
TEXT_CHARS = 19_000  # under the 20,000-character limit of one item
WORDS = ("export", "report", "broken", "slow", "love", "dashboard", "checkout", "fails", "again", "please",
         "add", "dark", "mode", "great", "terrible", "invoice", "login", "password", "reset", "mobile", "app",
         "crash", "refund", "thanks", "annoying", "page", "filter", "search", "sync", "error", "support")


def long_text(rng: random.Random, chars: int, tag: str) -> str:
    """Words a customer might write, ``chars`` long, unique through ``tag``."""
    words = [tag]
    size = len(tag)
    while size < chars:
        word = rng.choice(WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:chars]


def webhook_body(rng: random.Random, run: str, limit: int = WEBHOOK_LIMIT) -> bytes:
    """A JSON list of long-text records, as many as fit under ``limit`` bytes."""
    records: list[dict[str, str]] = []
    while True:
        record = {"id": f"{run}-hook-{len(records)}", "text": long_text(rng, TEXT_CHARS, f"{run}h{len(records)}")}
        if len(json.dumps([*records, record]).encode()) >= limit:
            return json.dumps(records).encode()
        records.append(record)


def api_body(rng: random.Random, run: str, items: int = 1000, chars: int = 18_000) -> bytes:
    return json.dumps({"items": [{"text": long_text(rng, chars, f"{run}a{n}"), "channel": "bench",
                                  "external_id": f"{run}-api-{n}"} for n in range(items)]}).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(database: Path) -> dict[str, str]:
    return {**os.environ, "FEEDBACKLOOP_DATABASE_URL": f"sqlite:///{database}", "FEEDBACKLOOP_LOAD_PLUGINS": "",
            "FEEDBACKLOOP_ADMIN_KEY": ADMIN_KEY, SECRET_ENV: SECRET, "HF_HUB_OFFLINE": "1"}


def start_server(env: dict[str, str], port: int, timeout_s: float = 90.0) -> subprocess.Popen[bytes]:
    """``feedbackloop serve`` with its channel, once /healthz answers."""
    subprocess.run([str(FEEDBACKLOOP), "channels", "add", CHANNEL, "--plugin", "webhook", "--secret-env",
                    SECRET_ENV], env=env, check=True, capture_output=True)
    server = subprocess.Popen([str(FEEDBACKLOOP), "serve", "--port", str(port), "--no-access-log"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the server exited on start")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not come up")


@dataclass
class Sent:
    """One request of the load: its status (0 when it never got one) and how long it took."""

    status: int = 0
    seconds: float = 0.0
    body: dict[str, object] = field(default_factory=dict)


def post(url: str, body: bytes, headers: dict[str, str], sent: Sent, timeout_s: float) -> None:
    start = time.perf_counter()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            sent.status, sent.body = response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        sent.status, sent.body = error.code, {"detail": error.read()[:500].decode(errors="replace")}
    sent.seconds = time.perf_counter() - start


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


@dataclass
class Figures:
    healthz_ms: list[float]
    healthz_errors: int
    webhook: Sent
    api: Sent

    def summary(self) -> dict[str, object]:
        return {"healthz_count": len(self.healthz_ms), "healthz_errors": self.healthz_errors,
                "healthz_p50_ms": round(percentile(self.healthz_ms, 0.5), 1),
                "healthz_max_ms": round(max(self.healthz_ms, default=float("nan")), 1),
                "webhook_status": self.webhook.status, "webhook_s": round(self.webhook.seconds, 2),
                "api_status": self.api.status, "api_s": round(self.api.seconds, 2),
                "load_average": [round(value, 2) for value in os.getloadavg()]}


def measure(port: int, api_items: int = 1000, api_text_chars: int = 18_000, interval_s: float = 0.02,
            timeout_s: float = 900.0, probe_timeout_s: float = 10.0) -> Figures:
    """Send the two big requests at once and probe /healthz until both are answered."""
    rng, run = random.Random(14), f"r{time.time_ns()}"
    base = f"http://127.0.0.1:{port}"
    hook = webhook_body(rng, run)
    batch = api_body(rng, run, items=api_items, chars=api_text_chars)
    webhook, api = Sent(), Sent()
    senders = [
        threading.Thread(target=post, args=(f"{base}/webhooks/{CHANNEL}", hook,
                                            {"X-Feedbackloop-Signature": sign(SECRET, hook)}, webhook, timeout_s)),
        threading.Thread(target=post, args=(f"{base}/api/v1/feedback", batch,
                                            {"Authorization": f"Bearer {ADMIN_KEY}"}, api, timeout_s)),
    ]
    for sender in senders:
        sender.start()
    latencies: list[float] = []
    errors = 0
    time.sleep(0.2)  # both bodies are on their way before the first probe
    while any(sender.is_alive() for sender in senders):
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=probe_timeout_s) as response:
                response.read()
            latencies.append((time.perf_counter() - start) * 1000)
        except OSError:
            errors += 1
        time.sleep(interval_s)
    for sender in senders:
        sender.join()
    return Figures(healthz_ms=latencies, healthz_errors=errors, webhook=webhook, api=api)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api-items", type=int, default=1000, help="items in the API batch (1,000 at most)")
    parser.add_argument("--api-text-chars", type=int, default=18_000, help="length of each API batch text")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        env, port = server_env(Path(folder) / "bench.db"), free_port()
        server = start_server(env, port)
        try:
            figures = measure(port, api_items=args.api_items, api_text_chars=args.api_text_chars)
        finally:
            server.terminate()
            server.wait()
    print(json.dumps(figures.summary()))


if __name__ == "__main__":
    main()
