"""What the log lines cost: microseconds per line in each format, and signed webhooks per second through the
app with the served logging on (JSON, INFO) against logging as tests leave it (nothing below WARNING).

    python -m bench.log_bench [--deliveries 600]

Each delivery writes two lines (``http.request``, ``webhook.stored``); lines go to /dev/null, so the figure is
formatting and the handler, not a disk or a collector.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from core.intake.channels import add_channel
from core.logs import OWN_LOGGERS, configure_logging
from core.settings import Settings
from plugins.generic_webhook import sign
from tests.support.loops import make_loop

SECRET = "bench-secret-123456"
LINES = 20_000


def per_line_us(log_format: str) -> float:
    with open(os.devnull, "w") as sink:
        handler = configure_logging(Settings(log_format=log_format), stream=sink)  # type: ignore[arg-type]
        logger = logging.getLogger("core.bench")
        started = time.perf_counter()
        for number in range(LINES):
            logger.info("webhook.stored", extra={"request_id": "4f0c1d2e3b4a59687766554433221100", "channel": "forum",
                                                 "redelivery": False, "new_items": 1, "updated_items": 0,
                                                 "duplicate_items": number % 2})
        elapsed = time.perf_counter() - started
        logging.getLogger().removeHandler(handler)
    return elapsed / LINES * 1e6


def deliveries_per_s(count: int, logs_on: bool) -> float:
    folder = Path(tempfile.mkdtemp())
    os.environ["BENCH_HOOK_SECRET"] = SECRET
    loop = make_loop(f"sqlite:///{folder / 'log_bench.db'}")
    with loop.session() as session:
        add_channel(loop, session, "hook", "webhook", secret_env="BENCH_HOOK_SECRET")
    sink = open(os.devnull, "w")  # noqa: SIM115 (closed below, after the client)
    handler = configure_logging(Settings(log_format="json"), stream=sink) if logs_on else None
    try:
        with TestClient(create_app(loop.settings, loop=loop)) as client:
            bodies = [json.dumps({"id": f"d-{n}", "text": f"export to excel fails on board {n}"}).encode()
                      for n in range(count)]
            started = time.perf_counter()
            for body in bodies:
                assert client.post("/webhooks/hook", content=body,
                                   headers={"X-Feedbackloop-Signature": sign(SECRET, body)}).status_code == 202
            elapsed = time.perf_counter() - started
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
        for name in OWN_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
        sink.close()
        loop.close()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=600)
    args = parser.parse_args()
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; uptime: {load}")
    for log_format in ("json", "text"):
        print(f"{log_format}: best of 3, {min(per_line_us(log_format) for _ in range(3)):.1f} us per line")
    for round_number in range(3):  # alternated, so that a change of load hits both alike
        off = deliveries_per_s(args.deliveries, logs_on=False)
        on = deliveries_per_s(args.deliveries, logs_on=True)
        print(f"round {round_number + 1}: {off:.0f} deliveries/s with logging off, {on:.0f} with JSON lines at INFO "
              f"({on / off:.2f}x)")


if __name__ == "__main__":
    main()
