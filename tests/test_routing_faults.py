"""Delivery under faults: a tracker that fails half the time and a worker killed with SIGKILL, 200 times.

The tracker is a separate HTTP server process that answers 500 or hangs past the client's timeout on
half of its requests, sometimes after doing the work (so "created but not recorded" really happens).
The worker is a forked process running the real delivery code, killed at random points while the test
grows the themes, and at two fixed ones: right after the tracker made a ticket and right after it took a
growth comment, before either is recorded. At the end every delivery is sent, every theme has exactly one
ticket and the ticket shows the theme's final volume, with no growth comment posted twice.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import signal
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
from sqlalchemy import select

from core import hookimpl
from core.loop import FeedbackLoop
from core.models import Delivery, FeedbackItem, Theme, ThemeMembership
from core.plugin_manager import make_plugin_manager
from core.routing.outbox import DeliveryPolicy, send_due
from core.routing.plan import plan_deliveries
from core.settings import Settings
from core.types import DeliveryRequest, DeliveryResult, TargetType
from tests.support.http_fakes import JsonHandler
from tests.support.loops import make_loop

THEMES = 6
KILLS = 200
CLIENT_TIMEOUT_S = 0.15
FAST_POLICY = DeliveryPolicy(backoff_base_s=0.01, backoff_cap_s=0.1, max_failures=10**6, breaker_threshold=6,
                             breaker_cooldown_s=0.05)


class FaultyTracker(JsonHandler):
    """A minimal tracker: tickets found by idempotency key, comments found by update key."""

    state: dict[str, Any]
    lock: threading.Lock

    def _answer(self, status: int, payload: Any) -> None:
        # The client timed out or its worker was killed: exactly the faults under test.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_json(status, payload)

    def _fault(self, lose_answer: bool = False) -> str | None:
        if lose_answer:
            self.state["faults_injected"] += 1
            return "500-after"
        if not self.state["faults"] or random.random() >= 0.5:
            return None
        self.state["faults_injected"] += 1
        return random.choice(["500-before", "500-after", "hang-after", "hang-before"])

    def _fail_after(self, fault: str | None) -> bool:
        """Answer the fault after the work was done; True if the caller should not answer again."""
        if fault == "500-after":
            self._answer(500, {"error": "internal error after commit"})
            return True
        if fault == "hang-after":
            time.sleep(CLIENT_TIMEOUT_S * 3)
            self._answer(504, {"error": "too late"})
            return True
        return False

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlparse(self.path)
        if url.path == "/_state":
            with self.lock:
                self._answer(200, self.state)
            return
        fault = self._fault()
        if fault in ("500-before", "500-after"):
            self._answer(500, {"error": "internal error"})
            return
        if fault in ("hang-before", "hang-after"):
            time.sleep(CLIENT_TIMEOUT_S * 3)
        with self.lock:
            if url.path == "/tickets":
                key = parse_qs(url.query)["key"][0]
                found = [t for t in self.state["tickets"].values() if t["key"] == key]
                self.state["lookups_found"] += bool(found)
                self._answer(200, found)
            elif url.path.endswith("/comments"):
                self._answer(200, self.state["tickets"][url.path.split("/")[2]]["comments"])
            else:
                self._answer(404, {"error": "no such path"})

    def do_POST(self) -> None:  # noqa: N802
        payload = self.read_json()
        url = urlparse(self.path)
        if url.path == "/_faults":
            self.state["faults"] = payload["on"]
            self._answer(200, {})
            return
        # Random faults alone leave "created but the answer lost" untried in about one run in six: the first
        # ticket is always created and then answered with an error.
        fault = self._fault(lose_answer=url.path == "/tickets" and self.state.pop("lose_first_create", False))
        if fault == "500-before":
            self._answer(500, {"error": "internal error"})
            return
        if fault == "hang-before":
            time.sleep(CLIENT_TIMEOUT_S * 3)
            self._answer(504, {"error": "gave up"})
            return
        with self.lock:
            if url.path == "/tickets":
                ticket_id = str(len(self.state["tickets"]) + 1)
                self.state["tickets"][ticket_id] = {"id": ticket_id, "key": payload["key"],
                                                    "volume": payload["volume"], "comments": []}
                answer: dict[str, Any] = {"id": ticket_id}
            else:
                comments = self.state["tickets"][url.path.split("/")[2]]["comments"]
                comments.append({"update_key": payload["update_key"], "volume": payload["volume"]})
                answer = {"ok": True}
        if not self._fail_after(fault):
            self._answer(201, answer)


def serve_tracker(port_queue: Any) -> None:
    FaultyTracker.state = {"tickets": {}, "faults": True, "faults_injected": 0, "lookups_found": 0,
                           "lose_first_create": True}
    FaultyTracker.lock = threading.Lock()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FaultyTracker)
    port_queue.put(server.server_address[1])
    server.serve_forever()


class TrackerTarget:
    """The target plugin under test: look the ticket up by key before creating; comments likewise."""

    def __init__(self, kill_points: dict[str, Any] | None = None) -> None:
        # Random kills land in the delivery code only when the machine is fast enough (on a loaded one they
        # all land in start-up), so the first ticket made and the first comment posted by any worker are
        # each followed by a hang the test kills: "done but not recorded" is tried on every machine.
        self.kill_points = kill_points or {}

    def _hang_at(self, point: str) -> None:
        event = self.kill_points.get(point)
        if event is not None and not event.is_set():
            event.set()
            time.sleep(3600)

    def deliver(self, request: DeliveryRequest) -> DeliveryResult:
        base = str(request.options["url"])
        volume = request.theme.volume
        with httpx.Client(base_url=base, timeout=CLIENT_TIMEOUT_S) as client:
            ref = request.existing_ref
            found_by_key = False
            if ref is None:
                response = client.get("/tickets", params={"key": request.idempotency_key})
                response.raise_for_status()
                found = response.json()
                if not found:
                    created = client.post("/tickets", json={"key": request.idempotency_key, "volume": volume})
                    created.raise_for_status()
                    self._hang_at("created")
                    return DeliveryResult(external_ref=created.json()["id"])
                ref, found_by_key = found[0]["id"], found[0]["volume"] != volume
            if request.update_key is not None or found_by_key:
                update_key = request.update_key or f"{request.idempotency_key}:volume-{volume}"
                comments = client.get(f"/tickets/{ref}/comments")
                comments.raise_for_status()
                if all(comment["update_key"] != update_key for comment in comments.json()):
                    client.post(f"/tickets/{ref}/comments",
                                json={"update_key": update_key, "volume": volume}).raise_for_status()
                    self._hang_at("commented")
            return DeliveryResult(external_ref=str(ref))

    @hookimpl
    def register_target_types(self, register: Any) -> None:
        register(TargetType(name="tracker", description="test tracker", deliver=self.deliver))


def worker_loop(settings: Settings, ready: Any, kill_points: dict[str, Any]) -> None:
    """The forked worker: a fresh engine and plugin manager, then deliver until killed."""
    loop = FeedbackLoop(settings, pm=make_plugin_manager(load_installed=False))
    loop.pm.register(TrackerTarget(kill_points))
    rng = random.Random(os.getpid())
    ready.set()  # the kill is timed from here, so it lands inside the delivery code, not in start-up
    while True:
        send_due(loop, FAST_POLICY, rng=rng)
        time.sleep(0.005)


def grow(loop: FeedbackLoop, theme_id: int, count: int, serial: list[int]) -> None:
    with loop.session() as session:
        for _ in range(count):
            serial[0] += 1
            item = FeedbackItem(channel="api", external_id=f"item-{serial[0]}", text_original="slow export",
                                text_redacted="slow export", metadata_json={})
            session.add(item)
            session.flush()
            session.add(ThemeMembership(item_id=item.id, theme_id=theme_id))


def final_volumes(loop: FeedbackLoop) -> dict[str, int]:
    with loop.session() as session:
        volumes = {}
        for delivery in session.scalars(select(Delivery)):
            volumes[delivery.idempotency_key] = len(delivery.theme.memberships)
        return volumes


def test_no_ticket_lost_or_doubled_under_faults_and_kills(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    ports = context.Queue()
    tracker = context.Process(target=serve_tracker, args=(ports,), daemon=True)
    tracker.start()
    tracker_url = f"http://127.0.0.1:{ports.get(timeout=10)}"
    rules = tmp_path / "rules.toml"
    rules.write_text(f'[default]\nowner = "ops"\ntarget = "tracker"\ntarget_options = {{ url = "{tracker_url}" }}\n')
    loop = make_loop(f"sqlite:///{tmp_path / 'faults.db'}", rules_file=rules)
    loop.pm.register(TrackerTarget())
    serial = [0]
    with loop.session() as session:
        theme_ids = []
        for index in range(THEMES):
            theme = Theme(label=f"theme {index}", keywords=["export"], quotes=[], status="new")
            session.add(theme)
            session.flush()
            theme_ids.append(theme.id)
    for theme_id in theme_ids:
        grow(loop, theme_id, 3, serial)
    with loop.session() as session:
        plan_deliveries(loop, session)
    rng = random.Random(5)
    growth_events = 0
    kill_points = {"created": context.Event(), "commented": context.Event()}
    # The first worker makes a ticket (nothing exists yet). With this seed every theme grows after the first
    # kill, so by the last one a growth comment is due somewhere unless a worker already posted one.
    wait_for = {0: "created", KILLS - 1: "commented"}
    try:
        for kill in range(KILLS):
            ready = context.Event()
            worker = context.Process(target=worker_loop, args=(loop.settings, ready, kill_points))
            worker.start()
            try:
                assert ready.wait(timeout=30)
                if kill % 2 == 0:  # the themes grow while the worker runs
                    grow(loop, rng.choice(theme_ids), rng.randint(1, 3), serial)
                    growth_events += 1
                if kill in wait_for:
                    point = wait_for[kill]
                    assert kill_points[point].wait(timeout=60), f"no worker reached the kill point {point!r}"
                else:
                    time.sleep(rng.uniform(0.0, 0.25))
            finally:
                # Also when an assertion above fails: a worker left alive keeps pytest from exiting.
                assert worker.pid is not None
                os.kill(worker.pid, signal.SIGKILL)
                worker.join()
            assert worker.exitcode == -signal.SIGKILL
        during_chaos = httpx.get(f"{tracker_url}/_state").json()
        # Drain with the faults still on: everything must converge without anyone's help.
        deadline = time.monotonic() + 60
        behind: list[str] = []
        while time.monotonic() < deadline:
            send_due(loop, FAST_POLICY)
            with loop.session() as session:
                behind = [f"{d.idempotency_key} ({d.state}, {d.delivered_volume} of {len(d.theme.memberships)})"
                          for d in session.scalars(select(Delivery))
                          if d.state != "sent" or d.delivered_volume < len(d.theme.memberships)]
            if not behind:
                break
            time.sleep(0.05)
        state = httpx.get(f"{tracker_url}/_state").json()
    finally:
        tracker.kill()
    volumes = final_volumes(loop)
    tickets_by_key: dict[str, list[dict[str, Any]]] = {}
    for ticket in state["tickets"].values():
        tickets_by_key.setdefault(ticket["key"], []).append(ticket)
    print(f"\nfault test: {KILLS} SIGKILLs, {growth_events} growth events, {state['faults_injected']} faults "
          f"injected, {state['lookups_found']} lookups found an existing ticket, "
          f"{sum(len(t['comments']) for t in state['tickets'].values())} growth comments "
          f"({sum(len(t['comments']) for t in during_chaos['tickets'].values())} before the drain)")
    assert not behind, f"deliveries not sent or not up to date after the drain: {behind}"
    assert sorted(tickets_by_key) == sorted(volumes)  # every theme has a ticket...
    assert all(len(tickets) == 1 for tickets in tickets_by_key.values())  # ...exactly one
    for key, (ticket,) in tickets_by_key.items():
        update_keys = [comment["update_key"] for comment in ticket["comments"]]
        assert len(update_keys) == len(set(update_keys)), f"{key}: a growth comment was posted twice"
        latest = max([ticket["volume"], *(comment["volume"] for comment in ticket["comments"])])
        assert latest == volumes[key], f"{key}: the ticket shows {latest} items, the theme has {volumes[key]}"
    assert state["faults_injected"] > 0 and state["lookups_found"] > 0  # the faults really happened
    # How much of the work the killed workers did before the drain depends on the machine's speed; that some
    # of it (a ticket and a growth comment, each followed by a kill before it was recorded) does not.
    assert during_chaos["tickets"]
    assert any(ticket["comments"] for ticket in during_chaos["tickets"].values())
