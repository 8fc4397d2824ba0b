"""Scale-out bench (issue 17): two API processes and two Celery workers on PostgreSQL and RabbitMQ.

1. warm-up: a Banking77 corpus sent through the signed webhooks of four channels, dated over the past
   week at its sources (the spike score's baseline), embedded by the workers and re-clustered by the
   reclustering task: the themes a running installation has;
2. steady: ``--rate`` deliveries/s for ``--seconds``; each item's latency from the sender's first attempt
   to its theme membership; half way, a burst of a topic never seen before (``--burst`` items in under
   a second), which a ``[[spike]]`` rule watches: its notice goes to a local receiver;
3. faults, at the same rate, until ``--items`` deliveries in all: a worker SIGKILLed while it runs a task
   (restarted 10 s later, as a supervisor would), the RabbitMQ node stopped for ``--broker-outage-s`` then
   started, PostgreSQL stopped for ``--db-outage-s`` then started;
4. drain, then routing (what a product manager's "route" does) and the tickets on a ledger server that
   files by idempotency key.

Checks: every acknowledged delivery stored exactly once, embedded and in a theme; one ticket per routed
theme, one tracker call per ticket; every answer counted (only 2xx and 503 with Retry-After allowed).
Its own PostgreSQL cluster (port 5433) and RabbitMQ node (port 5673), so the faults touch nobody else.
Run as root (pg_ctlcluster, rabbitmqctl), inside ``flock /tmp/heavy.lock``:

    .venv/bin/python bench/scale_out_bench.py [--items 20000 --rate 50 --seconds 120]

``--no-faults`` runs the warm-up and the steady phase only: a latency profile, with each steady item's latency
split into stages (sent to stored, stored to embedded, embedded to its theme) from the rows' own times.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scale_out_report import report  # noqa: E402
from bench.scale_out_support import (  # noqa: E402
    CHANNELS,
    RABBIT_URL,
    BenchCluster,
    Delivery,
    Sender,
    burst_texts,
    corpus,
    deliveries,
    fresh_database,
    postgres,
    rabbitmqctl,
    start_services,
    stop_services,
)
from core.intake.channels import add_channel  # noqa: E402
from core.loop import FeedbackLoop  # noqa: E402
from core.models import Delivery as Outbox  # noqa: E402
from core.models import FeedbackItem, SpikeAlert, Theme, ThemeMembership  # noqa: E402
from core.plugin_manager import make_plugin_manager  # noqa: E402
from core.routing.plan import plan_deliveries  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.tasks.broker import publisher  # noqa: E402
from tests.plugins import celery_kit  # noqa: E402
from tests.support.celery_cluster import Ledger, cluster_env, wait_until  # noqa: E402
from tests.support.loops import HashEmbedder  # noqa: E402
from tests.support.server import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Scale-out on PostgreSQL and RabbitMQ (issue 17)"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


class Bench:
    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args, self.folder = args, folder
        self.tickets, self.notices = Ledger(), Ledger()
        self.secrets = {channel: f"bench-{channel}-secret-0123456789" for channel in CHANNELS}
        database_url = fresh_database("feedbackloop_scaleout")
        rules = folder / "rules.toml"
        rules.write_text(f'[default]\nowner = "support"\ntarget = "ledger"\n'
                         f'target_options = {{ url = "{self.tickets.url}" }}\n\n'
                         f'[[spike]]\nname = "outage"\nowner = "ops"\ntarget = "ledger"\n'
                         f'target_options = {{ url = "{self.notices.url}" }}\nthreshold = 10\nmin_recent = 10\n'
                         f'cooldown_minutes = 60\nkeywords_any = ["outage"]\n')
        variables = {f"BENCH_SECRET_{channel.upper()}": secret for channel, secret in self.secrets.items()}
        os.environ.update(variables)
        self.env = {**cluster_env(database_url, RABBIT_URL, folder), **variables,
                    "FEEDBACKLOOP_EMBEDDING_MODEL": args.model, "FEEDBACKLOOP_RULES_FILE": str(rules),
                    "FEEDBACKLOOP_SECRETS_DIR": str(folder / "secrets"), "FEEDBACKLOOP_BEAT_SWEEP_S": "2",
                    "FEEDBACKLOOP_RATE_LIMIT_PER_CHANNEL": "", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                    "TOKENIZERS_PARALLELISM": "false"}
        settings = Settings(database_url=database_url, rules_file=rules, broker_url=RABBIT_URL,
                            broker_queue_prefix=self.env["FEEDBACKLOOP_BROKER_QUEUE_PREFIX"], load_plugins="",
                            secrets_dir=folder / "secrets", outbound_allow_private="127.0.0.1",
                            secret_env_allowed="*")
        self.loop = FeedbackLoop(settings, pm=make_plugin_manager(load_installed=False), embedder=HashEmbedder())
        self.loop.pm.register(celery_kit)
        self.loop.migrate()
        with self.loop.session() as session:
            for channel in CHANNELS:
                add_channel(self.loop, session, channel, "webhook", secret_env=f"BENCH_SECRET_{channel.upper()}")
        self.cluster = BenchCluster(self.env, folder)
        self.sender: Sender | None = None
        self.phase, self.started = "start", time.monotonic()
        self.events: list[tuple[float, str]] = []
        self._watching = True
        self._log_offsets: dict[str, int] = {}
        self._reclusterings = 0

    def note(self, event: str) -> None:
        self.events.append((time.monotonic() - self.started, event))
        print(f"{time.monotonic() - self.started:7.1f} s  {event}", flush=True)

    def start_processes(self) -> None:
        for name in ("w1", "w2"):
            self.cluster.start_worker(name, f"--concurrency={self.args.concurrency}")
        self.cluster.wait_ready("w1", "w2", timeout_s=300)
        self.cluster.start_beat()
        ports = [free_port(), free_port()]
        for number, port in enumerate(ports, start=1):
            self.cluster.start_api(f"api{number}", port)
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url in urls:
            wait_until(lambda url=url: _up(f"{url}/healthz"), 120, f"{url} up")
        self.sender = Sender(urls, self.secrets)
        threading.Thread(target=self._progress, daemon=True).start()
        self.note("2 workers, beat, 2 API processes up")

    def counts(self) -> tuple[int, int, int, int]:
        """(items stored, embedded, in a theme, themes) in the database."""
        with self.loop.session() as session:
            stored = session.scalar(select(func.count()).select_from(FeedbackItem)) or 0
            embedded = session.scalar(select(func.count()).where(FeedbackItem.embedding.is_not(None))) or 0
            themed = session.scalar(select(func.count()).select_from(ThemeMembership)) or 0
            themes = session.scalar(select(func.count()).select_from(Theme)) or 0
        return stored, embedded, themed, themes

    def _progress(self) -> None:
        print(f"{'t s':>7} {'phase':<8} {'acked':>6} {'stored':>6} {'embed':>6} {'themed':>6} {'themes':>6} "
              f"{'503':>5} {'load':>5}", flush=True)
        while self._watching:
            time.sleep(self.args.progress_s)
            try:
                stored, embedded, themed, themes = self.counts()
            except Exception as error:  # PostgreSQL is down on purpose at one point
                print(f"{time.monotonic() - self.started:7.1f} {self.phase:<8} (database: {type(error).__name__})")
                continue
            assert self.sender is not None
            refused = sum(n for label, n in self.sender.answers.items() if label.startswith("503"))
            print(f"{time.monotonic() - self.started:7.1f} {self.phase:<8} {len(self.sender.acked):6d} {stored:6d} "
                  f"{embedded:6d} {themed:6d} {themes:6d} {refused:5d} {os.getloadavg()[0]:5.1f}", flush=True)

    def drained(self, quiet_s: float, timeout_s: float) -> float:
        """Wait until every acknowledged item is embedded and theme assignment made no progress for
        ``quiet_s``; the seconds that took."""
        assert self.sender is not None
        began, last, last_change = time.monotonic(), None, time.monotonic()
        while time.monotonic() - began < timeout_s:
            try:
                now = self.counts()
            except Exception:
                now = None
            if now != last:
                last, last_change = now, time.monotonic()
            elif now is not None and now[1] >= len(self.sender.acked) and time.monotonic() - last_change > quiet_s:
                return last_change - began
            time.sleep(1.0)
        raise AssertionError(f"not drained in {timeout_s:.0f} s: {last}")

    def warm_up(self, items: list[Delivery]) -> None:
        assert self.sender is not None
        self.phase = "warm-up"
        self.sender.send(items, self.args.warm_rate).result()
        self.sender.wait_answered()
        self.drained(quiet_s=5, timeout_s=1800)
        self.recluster()
        self.note(f"warm-up of {len(items)} re-clustered: {self.counts()[3]} themes")

    def reclusterings(self) -> int:
        """Re-clusterings done so far, by the workers' logs (-1: skipped, another held the lock); each log
        read from where the last call stopped (they grow by a line per item)."""
        for name in self.cluster.processes:
            if not name.startswith("w"):
                continue
            with (self.folder / f"{name}.log").open("rb") as log:
                log.seek(self._log_offsets.get(name, 0))
                fresh = log.read()
            complete = fresh[:fresh.rfind(b"\n") + 1]
            self._log_offsets[name] = self._log_offsets.get(name, 0) + len(complete)
            self._reclusterings += sum(b"feedbackloop.recluster[" in line and b"succeeded" in line
                                       and not line.rstrip().endswith(b": -1") for line in complete.splitlines())
        return self._reclusterings

    def recluster(self) -> None:
        """What beat's FEEDBACKLOOP_BEAT_RECLUSTER_S schedule sends: the reclustering task, then its end."""
        done = self.reclusterings()
        publisher(RABBIT_URL, self.env["FEEDBACKLOOP_BROKER_QUEUE_PREFIX"])("reclustering")
        wait_until(lambda: self.reclusterings() > done, 900, "the re-clustering done")

    def steady(self, items: list[Delivery], burst: list[Delivery]) -> float:
        """The measured traffic, the burst half way; the wall-clock time of the burst's last delivery."""
        assert self.sender is not None
        self.phase = "steady"
        sending = self.sender.send(items, self.args.rate)
        time.sleep(self.args.seconds / 2)
        self.note(f"burst of {len(burst)} items")
        self.sender.send(burst, max(len(burst) / 0.8, self.args.rate)).result()
        burst_sent = max(delivery.sent_at for delivery in burst)
        sending.result()
        return burst_sent

    def faults(self, items: list[Delivery]) -> None:
        assert self.sender is not None
        self.phase = "faults"
        length = len(items) / self.args.rate
        sending = self.sender.send(items, self.args.rate)
        began = time.monotonic()
        at = (0.1 * length, 0.2 * length, 0.2 * length + self.args.broker_outage_s + 0.15 * length)
        time.sleep(at[0])
        deadline, task = time.monotonic() + 60, None
        while task is None and time.monotonic() < deadline:  # killed the moment its log shows a task open
            task = self.cluster.running_task("w1")
            time.sleep(0.02)
        self.cluster.kill("w1")
        self.note(f"SIGKILL w1 (and its pool) during {task}")
        time.sleep(10)
        self.cluster.start_worker("w1again", f"--concurrency={self.args.concurrency}")  # a log of its own
        self.note("w1 restarted (as w1again)")
        time.sleep(max(0.0, began + at[1] - time.monotonic()))
        self.outage("RabbitMQ", lambda: rabbitmqctl("stop_app"), lambda: rabbitmqctl("start_app"),
                    self.args.broker_outage_s)
        time.sleep(max(0.0, began + at[2] - time.monotonic()))
        self.outage("PostgreSQL", lambda: postgres("stop"), lambda: postgres("start"), self.args.db_outage_s)
        sending.result()

    def outage(self, service: str, stop: Callable[[], object], start: Callable[[], object], seconds: float) -> None:
        """``service`` stopped for ``seconds``, then started again whatever happens meanwhile."""
        stop()
        self.note(f"{service} stopped")
        try:
            time.sleep(seconds)
        finally:
            start()
        self.note(f"{service} started")

    def route(self) -> int:
        with self.loop.session() as session:
            decided = plan_deliveries(self.loop, session).decided
            self.loop.kicks.after_commit(session, "deliveries")
        with self.loop.session() as session:
            wait_until(lambda: not session.scalar(select(func.count()).where(Outbox.state != "sent")), 300,
                       "every delivery sent")
        return decided

    def stop(self) -> None:
        self._watching = False
        if self.sender is not None:
            self.sender.close()
        self.cluster.stop()
        self.loop.close()
        self.tickets.close()
        self.notices.close()


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def checks(bench: Bench, burst_sent: float, steady_ids: set[str], burst_ids: set[str]) -> dict[str, object]:
    assert bench.sender is not None
    acked = {(delivery.channel, delivery.external_id): delivery for delivery in bench.sender.acked}
    with bench.loop.session() as session:
        rows = session.execute(
            select(FeedbackItem.channel, FeedbackItem.external_id, FeedbackItem.embedding.is_not(None),
                   ThemeMembership.theme_id, ThemeMembership.created_at, FeedbackItem.received_at,
                   FeedbackItem.updated_at, FeedbackItem.text_redacted)
            .outerjoin(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)).all()
        outbox = session.execute(select(Outbox.theme_id, Outbox.idempotency_key, Outbox.attempts)).all()
        alerts = session.execute(select(SpikeAlert.theme_id, SpikeAlert.rule, SpikeAlert.state)).all()
    copies = Counter((channel, external_id) for channel, external_id, *_ in rows)
    by_key = {(channel, external_id): (embedded, theme, at) for channel, external_id, embedded, theme, at, *_ in rows}
    stamps = {(channel, external_id): (received, updated) for channel, external_id, *_, received, updated, _ in rows}
    unthemed_texts = sorted(row[-1] for row in rows if row[3] is None)
    latencies, unthemed_steady, stages = [], 0, []
    for key, delivery in acked.items():
        if delivery.external_id in steady_ids:
            membership_at = by_key.get(key, (False, None, None))[2]
            if membership_at is None:
                unthemed_steady += 1
            else:
                latencies.append(membership_at.timestamp() - delivery.sent_at)
                received, embedded_at = stamps[key]  # updated_at: the embedding is the last write before a theme
                stages.append((received.timestamp() - delivery.sent_at, embedded_at.timestamp() - received.timestamp(),
                               membership_at.timestamp() - embedded_at.timestamp()))
    burst_themes = {by_key[key][1] for key in acked if key[1] in burst_ids and key in by_key}
    notice_times = [at for _, _, at in bench.notices.timed_calls() if at >= burst_sent - 60]
    return {
        "acked": len(acked), "stored_rows": len(rows),
        "acked_missing": sum(1 for key in acked if copies[key] == 0),
        "acked_stored_twice": sum(1 for key in acked if copies[key] > 1),
        "stored_not_acked": sum(1 for key in copies if key not in acked),
        "acked_not_embedded": sum(1 for key in acked if key in by_key and not by_key[key][0]),
        "acked_not_themed": sum(1 for key in acked if key in by_key and by_key[key][1] is None),
        "unthemed_examples": unthemed_texts[:8],
        "answers": dict(bench.sender.answers),
        "latencies": latencies, "unthemed_steady": unthemed_steady, "stages": stages,
        "themes_routed": len(outbox),
        "themes_with_two_tickets": sum(n > 1 for n in Counter(theme for theme, _, _ in outbox).values()),
        "tickets": len(bench.tickets.tickets),
        "calls_per_ticket": Counter(Counter(key for key, _ in bench.tickets.calls).values()),
        "outbox_attempts": Counter(attempts for _, _, attempts in outbox),
        "burst_themes": sorted(t for t in burst_themes if t is not None),
        "alerts": [(theme, rule, state) for theme, rule, state in alerts],
        "spike_s": (min(notice_times) - burst_sent) if notice_times else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20_000, help="deliveries in all")
    parser.add_argument("--warmup", type=int, default=8_000, help="of them, the warm-up corpus")
    parser.add_argument("--warm-rate", type=float, default=100.0)
    parser.add_argument("--rate", type=float, default=50.0, help="deliveries/s of the steady and fault phases")
    parser.add_argument("--seconds", type=float, default=120.0, help="the steady (measured) phase")
    parser.add_argument("--burst", type=int, default=40)
    parser.add_argument("--broker-outage-s", type=float, default=30.0)
    parser.add_argument("--db-outage-s", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes per worker")
    parser.add_argument("--model", default="minilm", help="FEEDBACKLOOP_EMBEDDING_MODEL of the workers")
    parser.add_argument("--progress-s", type=float, default=10.0)
    parser.add_argument("--keep-cluster", action="store_true", help="do not drop the bench's PostgreSQL cluster")
    parser.add_argument("--no-write", dest="write", action="store_false")
    parser.add_argument("--no-faults", dest="faults", action="store_false",
                        help="warm-up and steady phase only (a latency profile; --items is ignored)")
    args = parser.parse_args()
    steady_count = int(args.rate * args.seconds)
    fault_count = args.items - args.warmup - steady_count - args.burst if args.faults else 0
    if args.faults and fault_count / args.rate < 2 * (args.broker_outage_s + args.db_outage_s):
        parser.error(f"{fault_count} deliveries for the fault phase are too few for its outages at this rate")
    args.uptime_before, args.command = uptime(), " ".join(["python", *sys.argv])
    start_services()
    texts = corpus(args.items)
    warm = deliveries("warm", texts[:args.warmup], 0, backdate=timedelta(days=6))
    steady_items = deliveries("steady", texts[args.warmup:args.warmup + steady_count], args.warmup)
    burst = deliveries("burst", burst_texts(args.burst), 0)
    fault_items = deliveries("fault", texts[args.warmup + steady_count:args.warmup + steady_count + fault_count],
                             args.warmup + steady_count)
    folder = Path(tempfile.mkdtemp(prefix="scaleout-bench-"))
    bench = Bench(args, folder)
    try:
        bench.start_processes()
        bench.warm_up(warm)
        burst_sent = bench.steady(steady_items, burst)
        if args.faults:
            bench.faults(fault_items)
        assert bench.sender is not None
        bench.phase = "drain"
        bench.sender.wait_answered()
        drain_s = bench.drained(quiet_s=15, timeout_s=1800)
        bench.note(f"drained ({drain_s:.0f} s after the last answer)")
        steady_ids, burst_ids = {d.external_id for d in steady_items}, {d.external_id for d in burst}
        incremental = checks(bench, burst_sent, steady_ids, burst_ids)  # before the re-clustering rewrites them
        try:  # what was measured is reported even when a step after the drain fails
            bench.phase = "recluster"
            bench.recluster()  # as a nightly schedule would: the items waiting in the pool get their themes
            bench.drained(quiet_s=5, timeout_s=300)  # and the assignment pass it kicks at its end
            bench.note(f"re-clustered: {bench.counts()[3]} themes")
            bench.phase = "route"
            decided = bench.route()
            bench.note(f"{decided} themes routed, every delivery sent")
        except Exception as error:
            bench.note(f"{bench.phase} failed: {type(error).__name__}: {error}")
        found = {**checks(bench, burst_sent, steady_ids, burst_ids),
                 **{key: incremental[key] for key in ("latencies", "unthemed_steady", "burst_themes", "stages")},
                 "not_themed_incremental": incremental["acked_not_themed"]}
    finally:
        bench.stop()
        stop_services(drop_cluster=not args.keep_cluster)
    args.uptime_after = uptime()
    print(report(args, bench.events, found, RESULTS if args.write else None, SECTION))


if __name__ == "__main__":
    main()
