"""A small HTTP/1.1 load generator for the intake benchmark, run as its own process.

Raw asyncio streams with keep-alive connections: an HTTP client library would spend more CPU than
the server under test on this 2-core machine. Two modes:

* ``rate``: open loop, one delivery scheduled every 1/rate seconds; latency is measured from the
  scheduled time, so a server that falls behind is charged for the queue it causes.
* ``saturate``: closed loop, every connection sends its next delivery as soon as the last is answered.

Prints one JSON line: sent, ok (2xx), errors, seconds, rate, p50/p99/max latency in ms, and the
ids of acknowledged deliveries when asked (``--acked FILE``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

TEXTS = (
    "Exporting the monthly report to CSV times out when the account has more than {n} rows",
    "Card payment was declined twice at checkout although the balance was fine ({n})",
    "Please add dark mode to the mobile app, the white screen hurts at night #{n}",
    "The password reset e-mail arrives after 20 minutes, sometimes never (case {n})",
    "Love the new dashboard, but the filters reset every time I go back to page {n}",
)


def request_bytes(host: str, path: str, secret: str, index: int, run: str) -> bytes:
    # Every text is new (run and index in it): the same author repeating a text is a near-duplicate,
    # which takes the slower linking path and is not what a burst of fresh feedback looks like.
    body = json.dumps({"id": f"{run}-{index}", "text": TEXTS[index % len(TEXTS)].format(n=f"{run}{index}"),
                       "author": f"customer-{index % 997}"}).encode()
    # The generic webhook's timestamped signature (plugins/webhook_signing.py), made here without importing
    # feedbackloop: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>.
    timestamp = int(time.time())
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    signature = f"t={timestamp},v1={mac}"
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nX-Feedbackloop-Signature: {signature}\r\n"
            f"X-Feedbackloop-Delivery: {run}-{index}\r\n\r\n")
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        parts = urlsplit(args.url)
        self.host, self.port, self.path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
        self.args = args
        self.latencies: list[float] = []
        self.acked: list[int] = []
        self.errors = 0
        self.sent = 0

    async def connection(self, queue: asyncio.Queue[tuple[int, float] | None]) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            while (job := await queue.get()) is not None:
                index, scheduled = job
                self.sent += 1
                try:
                    writer.write(request_bytes(self.host, self.path, self.args.secret, index, self.args.run))
                    status = await read_response(reader)
                except (OSError, asyncio.IncompleteReadError):
                    self.errors += 1
                    return  # the server went away (the durability test kills it on purpose)
                self.latencies.append(time.perf_counter() - scheduled)
                if 200 <= status < 300:
                    self.acked.append(index)
                else:
                    self.errors += 1
        finally:
            writer.close()

    async def run(self) -> float:
        queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
        workers = [asyncio.create_task(self.connection(queue)) for _ in range(self.args.connections)]
        start = time.perf_counter()
        if self.args.mode == "rate":
            for index in range(int(self.args.rate * self.args.seconds)):
                due = start + index / self.args.rate
                if (delay := due - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
                queue.put_nowait((index, due))
        else:  # saturate: keep every connection busy until time is up
            index, end = 0, start + self.args.seconds
            while time.perf_counter() < end:
                while queue.qsize() < self.args.connections:
                    queue.put_nowait((index, time.perf_counter()))
                    index += 1
                await asyncio.sleep(0.001)
            while not queue.empty():
                queue.get_nowait()
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers, return_exceptions=True)
        return time.perf_counter() - start


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--secret", default="bench-secret")
    parser.add_argument("--mode", choices=("rate", "saturate"), default="rate")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--run", default="run", help="prefix of delivery and item ids")
    parser.add_argument("--acked", type=Path, help="write acknowledged indices here, one per line, as they come")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    load = Load(args)
    elapsed = asyncio.run(load.run())
    if args.acked:
        args.acked.write_text("".join(f"{index}\n" for index in load.acked))
    ms = [value * 1000 for value in load.latencies]
    print(json.dumps({"mode": args.mode, "sent": load.sent, "ok": len(load.acked), "errors": load.errors,
                      "seconds": round(elapsed, 2), "rate": round(len(load.acked) / elapsed, 1),
                      "p50_ms": round(percentile(ms, 0.50), 2), "p99_ms": round(percentile(ms, 0.99), 2),
                      "max_ms": round(max(ms, default=float("nan")), 2)}))


if __name__ == "__main__":
    main()
