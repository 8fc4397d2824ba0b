"""Intake benchmark: signed webhook deliveries against ``feedbackloop serve`` on SQLite.

Runs, on this machine, with the load generator (bench/http_load.py) in its own process:

1. a bare FastAPI endpoint that answers 202 and does nothing (same uvicorn, same settings): its
   saturated throughput is the ceiling of the web stack on this machine;
2. ``feedbackloop serve`` with a ``webhook`` channel: saturated throughput (closed loop), then an open
   loop at the target rate (default 1,000 deliveries/s) for p50/p99 latency.

Embedding and clustering are not part of intake (they run later, in ``feedbackloop cluster``); each
2xx is sent only after the delivery is committed, and the run checks that every acknowledged delivery
is stored. Results go to bench/RESULTS.md under "Intake" (``--no-write`` to only print them).

    .venv/bin/python bench/intake_bench.py [--seconds 10] [--rate 1000] [--connections 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECRET = "bench-secret-0123456789"
RESULTS = ROOT / "bench" / "RESULTS.md"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout:.0f} s")


def load(url: str, mode: str, seconds: float, connections: int, rate: float, run: str) -> dict[str, float]:
    command = [sys.executable, str(ROOT / "bench" / "http_load.py"), "--url", url, "--secret", SECRET,
               "--mode", mode, "--seconds", str(seconds), "--connections", str(connections),
               "--rate", str(rate), "--run", run]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def serve_env(database: Path) -> dict[str, str]:
    return {**os.environ, "FEEDBACKLOOP_DATABASE_URL": f"sqlite:///{database}", "FEEDBACKLOOP_LOAD_PLUGINS": "",
            "FEEDBACKLOOP_SECRET_BENCH": SECRET, "HF_HUB_OFFLINE": "1",
            # The bench measures throughput, far past the default per-channel budget: limits off.
            "FEEDBACKLOOP_RATE_LIMIT_PER_CHANNEL": "", "FEEDBACKLOOP_RATE_LIMIT_PER_KEY": ""}


def bare_run(args: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    code = ("import sys, uvicorn; sys.path.insert(0, 'bench'); from bare_app import create_bare_app; "
            f"uvicorn.run(create_bare_app(), host='127.0.0.1', port={port}, access_log=False, log_level='warning')")
    server = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)  # one process: the stack's ceiling
    try:
        wait_until_up(f"http://127.0.0.1:{port}/docs", server)
        url = f"http://127.0.0.1:{port}/webhooks/bench"
        load(url, "saturate", 2, args.connections, args.rate, "warm")
        return load(url, "saturate", args.seconds, args.connections, args.rate, "bare")
    finally:
        server.terminate()
        server.wait()


def feedbackloop_run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    database = workdir / "bench.db"
    env = serve_env(database)
    subprocess.run([str(BIN / "feedbackloop"), "channels", "add", "bench", "--plugin", "webhook",
                    "--secret-env", "FEEDBACKLOOP_SECRET_BENCH", "--option", "author_field=author"],
                   env=env, check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen([str(BIN / "feedbackloop"), "serve", "--port", str(port), "--no-access-log",
                               "--workers", str(args.workers)], env=env, cwd=workdir)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", server)
        url = f"http://127.0.0.1:{port}/webhooks/bench"
        load(url, "saturate", 2, args.connections, args.rate, "warm")
        saturated = load(url, "saturate", args.seconds, args.connections, args.rate, "sat")
        at_rate = [load(url, "rate", args.seconds, args.connections, args.rate, f"rate{n}")
                   for n in range(args.repeat)]
    finally:
        server.terminate()
        server.wait()
    with sqlite3.connect(database) as connection:
        stored = connection.execute("SELECT (SELECT count(*) FROM feedback_items) + "
                                    "(SELECT count(*) FROM item_sightings)").fetchone()[0]
    acknowledged = sum(int(run["ok"]) for run in (saturated, *at_rate))
    return {"saturated": saturated, "rate": at_rate,
            "check": {"stored": stored, "acknowledged_incl_warmup_min": acknowledged}}


def row(name: str, figures: dict[str, float]) -> str:
    return (f"| {name} | {figures['rate']:.0f} | {figures['p50_ms']:.1f} | {figures['p99_ms']:.1f} "
            f"| {figures['max_ms']:.1f} | {figures['errors']:.0f} |")


def write_results(args: argparse.Namespace, bare: dict[str, float], ours: dict[str, Any]) -> str:
    saturated, at_rate = ours["saturated"], ours["rate"]
    ratio = saturated["rate"] / bare["rate"] if bare["rate"] else float("nan")
    met = sum(run["rate"] >= 0.99 * args.rate and run["p99_ms"] <= 50 for run in at_rate)
    section = f"""## Intake

`bench/intake_bench.py`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs (load average
{args.load_before:.2f} at the start: the machine is shared, and busy neighbours lower every figure), Python
{platform.python_version()}, SQLite (WAL), `feedbackloop serve` (one uvicorn process, access log off),
load from a separate process (bench/http_load.py, {args.connections} keep-alive connections), generic
`webhook` channel with timestamped HMAC-SHA256 signatures, {args.seconds:.0f} s per run. Each 2xx is sent after the
delivery is committed; embedding and clustering are deferred (`feedbackloop cluster`).

| run | deliveries/s | p50 ms | p99 ms | max ms | errors |
|---|---|---|---|---|---|
{row("bare FastAPI 202 endpoint, saturated", bare)}
{row("feedbackloop, saturated", saturated)}
{chr(10).join(row(f"feedbackloop, open loop at {args.rate:.0f}/s, run {n + 1}", run)
              for n, run in enumerate(at_rate))}

Ratio of feedbackloop to the bare endpoint (saturated): **{ratio:.2f}**. Stored after the runs (items
and sightings): {ours['check']['stored']:.0f}; acknowledged in the measured runs:
{ours['check']['acknowledged_incl_warmup_min']:.0f}, plus the warm-up. Target (>= {args.rate:.0f}/s
sustained with p99 <= 50 ms): **met in {met} of {len(at_rate)} open-loop runs**.
"""
    if args.write:
        text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
        start = text.find("## Intake")
        if start >= 0:
            end = text.find("\n## ", start + 1)
            text = text[:start] + text[end + 1:] if end >= 0 else text[:start]
        RESULTS.write_text(text.rstrip() + "\n\n" + section)
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="open-loop runs at the target rate")
    parser.add_argument("--workers", type=int, default=1, help="feedbackloop serve --workers")
    parser.add_argument("--no-write", dest="write", action="store_false")
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]
    bare = bare_run(args)
    with tempfile.TemporaryDirectory() as workdir:
        ours = feedbackloop_run(args, Path(workdir))
    print(write_results(args, bare, ours))


if __name__ == "__main__":
    main()
