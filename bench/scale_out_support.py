"""Helpers of bench/scale_out_bench.py: the bench's own services (a PostgreSQL cluster and a RabbitMQ node
that only this bench uses, so stopping them disturbs nobody), the feedbackloop processes, the corpus, and
the webhook sender.

The sender is what a real webhook source does: each delivery is signed at the moment it is sent, a 503
is sent again after its ``Retry-After``, a broken connection after a second; every answer is counted, and
every 2xx is kept as an acknowledgement (the external id, the time of the first attempt).
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import create_engine, text

from tests.support.celery_cluster import Cluster

ROOT = Path(__file__).resolve().parents[1]
BANKING77 = ROOT.parent / "shared" / "data" / "banking77"
PG_VERSION, PG_CLUSTER, PG_PORT = "15", "bench", 5433
PG_ADMIN_URL = f"postgresql+psycopg://postgres@127.0.0.1:{PG_PORT}/postgres"
RABBIT_NODE, RABBIT_PORT = "bench@localhost", 5673
RABBIT_HOME = Path("/tmp/scaleout/rabbit")
RABBIT_URL = f"amqp://guest:guest@127.0.0.1:{RABBIT_PORT}//"
# Below uvicorn's keep-alive timeout (5 s): a connection idle longer is opened anew instead of failing.
IDLE_S = 4.0
CHANNELS = ("forum", "support", "appstore", "chat")
# A topic that the warm-up corpus never had: its burst forms a new theme, which the spike rule watches.
BURST_SUBJECTS = ("The app", "Your app", "The mobile app", "The website", "Online banking", "The banking app",
                  "Your website", "The login page")
BURST_PROBLEMS = ("is down, is there an outage?", "shows error 503, outage again?",
                  "will not load at all, outage?", "has an outage right now, nothing loads",
                  "times out for everyone here, outage?")


def rabbit_env() -> dict[str, str]:
    return {**os.environ, "RABBITMQ_NODENAME": RABBIT_NODE, "RABBITMQ_NODE_PORT": str(RABBIT_PORT),
            "RABBITMQ_DIST_PORT": "25673", "RABBITMQ_MNESIA_BASE": str(RABBIT_HOME / "mnesia"),
            "RABBITMQ_LOG_BASE": str(RABBIT_HOME / "log"), "RABBITMQ_PID_FILE": str(RABBIT_HOME / "bench.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(RABBIT_HOME / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(RABBIT_HOME / "rabbitmq")}


def rabbitmqctl(*argv: str) -> None:
    subprocess.run(["rabbitmqctl", "-n", RABBIT_NODE, *argv], env=rabbit_env(), check=True, capture_output=True,
                   timeout=120)


def start_services() -> None:
    """The bench's PostgreSQL cluster (port 5433, trust on local TCP) and RabbitMQ node (port 5673)."""
    clusters = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True).stdout
    if not any(line.split()[:2] == [PG_VERSION, PG_CLUSTER] for line in clusters.splitlines()):
        subprocess.run(["pg_createcluster", PG_VERSION, PG_CLUSTER, "-p", str(PG_PORT)], check=True,
                       capture_output=True)
        hba = Path(f"/etc/postgresql/{PG_VERSION}/{PG_CLUSTER}/pg_hba.conf")
        hba.write_text(hba.read_text().replace("scram-sha-256", "trust"))
        with Path(f"/etc/postgresql/{PG_VERSION}/{PG_CLUSTER}/postgresql.conf").open("a") as conf:
            conf.write("max_connections = 200\n")
    subprocess.run(["pg_ctlcluster", PG_VERSION, PG_CLUSTER, "start"], capture_output=True)
    try:
        rabbitmqctl("status")
    except subprocess.CalledProcessError:
        for folder in ("log", "mnesia"):
            (RABBIT_HOME / folder).mkdir(parents=True, exist_ok=True)
        (RABBIT_HOME / "enabled_plugins").write_text("[].\n")
        (RABBIT_HOME / "rabbitmq.conf").write_text(f"listeners.tcp.default = {RABBIT_PORT}\n")
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(RABBIT_HOME)], check=True)
        subprocess.run(["rabbitmq-server", "-detached"], env=rabbit_env(), check=True)
        rabbitmqctl("wait", str(RABBIT_HOME / "bench.pid"), "--timeout", "60")
    rabbitmqctl("start_app")  # a no-op when it runs; after an interrupted bench, never left stopped


def stop_services(drop_cluster: bool) -> None:
    rabbitmqctl("stop")
    if drop_cluster:
        subprocess.run(["pg_dropcluster", PG_VERSION, PG_CLUSTER, "--stop"], check=True, capture_output=True)


def postgres(action: str) -> None:
    subprocess.run(["pg_ctlcluster", PG_VERSION, PG_CLUSTER, action], check=True, capture_output=True, timeout=120)


def fresh_database(name: str) -> str:
    server = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    server.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


class BenchCluster(Cluster):
    """The test support's worker and beat processes, and API servers beside them."""

    def start_api(self, name: str, port: int) -> subprocess.Popen[bytes]:
        return self._start(name, "serve", f"--port={port}", "--no-access-log")

    def running_task(self, name: str) -> str | None:
        """The name of a task the worker has received and not finished (from its log), or None."""
        open_tasks: dict[str, str] = {}
        with (self.folder / f"{name}.log").open("rb") as log:  # its tail: the log grows by a line per item
            log.seek(max(0, log.seek(0, 2) - 65536))
            tail = log.read().decode(errors="replace")
        for line in tail.splitlines()[-400:]:
            if "Task " not in line or "[" not in line.split("Task ", 1)[1]:
                continue
            task_name, _, rest = line.split("Task ", 1)[1].partition("[")
            task_id = rest.split("]", 1)[0]  # "Task feedbackloop.embed[<id>] received" / "succeeded in"
            if "] received" in rest:
                open_tasks[task_id] = task_name
            elif " succeeded in " in rest or " raised " in rest:
                open_tasks.pop(task_id, None)
        return next(iter(open_tasks.values()), None) if open_tasks else None


def corpus(count: int, seed: int = 17) -> list[str]:
    """Banking77 (train and test) shuffled, repeated when more are asked for: another customer writing the
    same words is another item (its own author), embedded once by its text's hash."""
    texts: list[str] = []
    for split in ("train", "test"):
        with (BANKING77 / f"{split}.csv").open(newline="") as handle:
            texts.extend(row["text"] for row in csv.DictReader(handle))
    random.Random(seed).shuffle(texts)
    return [texts[index % len(texts)] for index in range(count)]


def burst_texts(count: int) -> list[str]:
    combos = [f"{subject} {problem}" for problem in BURST_PROBLEMS for subject in BURST_SUBJECTS]
    return [combos[index % len(combos)] + ("" if index < len(combos) else f" ({index // len(combos)})")
            for index in range(count)]


@dataclass
class Delivery:
    external_id: str
    channel: str
    text: str
    created_at: datetime | None = None  # a warm-up item's time at its source (the past week)
    phase: str = ""
    sent_at: float = 0.0  # the first attempt's wall-clock time
    acked_at: float | None = None
    attempts: int = 0

    def body(self) -> bytes:
        record: dict[str, str] = {"id": self.external_id, "text": self.text, "author": f"customer-{self.external_id}"}
        if self.created_at is not None:
            record["created_at"] = self.created_at.isoformat()
        return json.dumps(record).encode()


def deliveries(phase: str, texts: Iterable[str], start: int, backdate: timedelta | None = None) -> list[Delivery]:
    made = []
    listed = list(texts)
    now = datetime.now(UTC)
    for offset, body in enumerate(listed):
        index = start + offset
        moment = now - backdate * (1 - offset / max(1, len(listed))) if backdate is not None else None
        made.append(Delivery(f"{phase}-{index}", CHANNELS[index % len(CHANNELS)], body, moment, phase))
    return made


class Sender:
    """Webhook deliveries over keep-alive connections to the API processes (``per_api`` each, taking from
    one queue, as a load balancer spreads them), paced open loop from an event loop in a thread of its own.
    Raw asyncio streams, as bench/http_load.py: an HTTP client library costs more CPU than the servers on
    this 2-core machine, and a sender that falls behind would be charged to feedbackloop."""

    def __init__(self, urls: list[str], secrets: dict[str, str], per_api: int = 16) -> None:
        self.secrets = secrets
        self.answers: Counter[str] = Counter()
        self.acked: list[Delivery] = []
        self.in_flight = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sender", daemon=True)
        self._thread.start()
        self._queue: asyncio.Queue[Delivery | None] = asyncio.run_coroutine_threadsafe(
            self._make_queue(), self._loop).result()
        self._connections = [(parts.hostname or "127.0.0.1", parts.port or 80)
                             for parts in map(urlsplit, urls) for _ in range(per_api)]
        for host, port in self._connections:
            asyncio.run_coroutine_threadsafe(self._connection(host, port), self._loop)

    async def _make_queue(self) -> asyncio.Queue[Delivery | None]:
        return asyncio.Queue()

    def send(self, batch: list[Delivery], rate: float) -> Future[float]:
        """Send ``batch`` at ``rate`` per second (open loop: retries never hold up the next delivery); done
        when the last is handed to a connection, not answered (``wait_answered``), with the seconds taken."""
        return asyncio.run_coroutine_threadsafe(self._pace(batch, rate), self._loop)

    async def _pace(self, batch: list[Delivery], rate: float) -> float:
        start = time.monotonic()
        for index, delivery in enumerate(batch):
            if (delay := start + index / rate - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            delivery.sent_at = time.time()  # when it is due: a queue in front of the servers is charged to them
            self.in_flight += 1
            self._queue.put_nowait(delivery)
        return time.monotonic() - start

    def _again(self, delivery: Delivery, after_s: float) -> None:
        self._loop.call_later(after_s, self._queue.put_nowait, delivery)

    async def _connection(self, host: str, port: int) -> None:
        from plugins.generic_webhook import sign

        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        last_used = time.monotonic()
        while (delivery := await self._queue.get()) is not None:
            delivery.attempts += 1
            body = delivery.body()
            head = (f"POST /webhooks/{delivery.channel} HTTP/1.1\r\nHost: {host}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                    f"X-Feedbackloop-Signature: {sign(self.secrets[delivery.channel], body)}\r\n"
                    f"X-Feedbackloop-Delivery: {delivery.external_id}\r\n\r\n")
            if writer is not None and time.monotonic() - last_used > IDLE_S:  # the server closes idle ones
                writer.close()
                reader = writer = None
            last_used = time.monotonic()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                assert reader is not None
                writer.write(head.encode() + body)
                status, headers = await asyncio.wait_for(_response(reader), 30.0)
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:  # resent, as any source does
                self.answers[f"no answer ({type(error).__name__})"] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                self._again(delivery, 1.0)
                continue
            if headers.get("connection") == "close":
                writer.close()
                reader = writer = None
            retry_after = headers.get("retry-after")
            self.answers[f"{status}" + (" Retry-After" if retry_after else "")] += 1
            if 200 <= status < 300:
                delivery.acked_at = time.time()
                self.acked.append(delivery)
                self.in_flight -= 1
            elif status >= 500 or status == 429:
                self._again(delivery, float(retry_after or 1.0))
            else:  # a 4xx other than 429: a refusal, counted, never resent
                self.in_flight -= 1
        if writer is not None:
            writer.close()

    def wait_answered(self, timeout_s: float = 600.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.2)

    def close(self) -> None:
        for _ in self._connections:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, None)
        time.sleep(0.5)
        self._loop.call_soon_threadsafe(self._loop.stop)


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in
               (line.partition(":") for line in lines[1:] if line)}
    if length := int(headers.get("content-length", "0")):
        await reader.readexactly(length)
    return int(lines[0].split(" ", 2)[1]), headers


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
