"""JSON logs and request ids: one id followed from a signed webhook through the worker to the ticket's external
reference, the items keeping it in the database, and headers that cannot shape a log line."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core import hookimpl
from core.intake.channels import add_channel
from core.intake.ingest import ingest
from core.logs import MAX_ITEMS_PER_LINE, OWN_LOGGERS, SERVER_LOGGERS, configure_logging, log_items
from core.loop import FeedbackLoop
from core.models import Delivery, FeedbackItem
from core.routing.plan import plan_deliveries
from core.settings import Settings
from core.types import DeliveryRequest, DeliveryResult, ItemDraft, TargetType
from core.worker import run_round
from plugins.generic_webhook import sign
from tests.support.env import ADMIN_KEY
from tests.support.loops import make_loop
from tests.support.migrations import migrations
from tests.support.themes import CHECKOUT

SECRET = "hook-secret-123456"
GENERATED = re.compile(r"[0-9a-f]{32}")
Lines = Callable[[], list[dict[str, Any]]]


class RecordingTarget:
    """A tracker that makes ticket REC-<n> and remembers each request."""

    def __init__(self) -> None:
        self.calls: list[DeliveryRequest] = []

    def deliver(self, request: DeliveryRequest) -> DeliveryResult:
        self.calls.append(request)
        return DeliveryResult(external_ref=request.existing_ref or f"REC-{len(self.calls)}")

    @hookimpl
    def register_target_types(self, register: Callable[[TargetType], None]) -> None:
        register(TargetType(name="recorder", description="records deliveries", deliver=self.deliver))


def capture(log_format: str) -> tuple[io.StringIO, Callable[[], None]]:
    """The process's logging as ``serve`` sets it up, into a buffer; returns it and the undo."""
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
             for name in SERVER_LOGGERS}
    buffer = io.StringIO()
    handler = configure_logging(Settings(log_format=log_format), stream=buffer)  # type: ignore[arg-type]

    def undo() -> None:
        logging.getLogger().removeHandler(handler)
        for name in OWN_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
        for name, (handlers, propagate) in saved.items():
            logging.getLogger(name).handlers[:] = handlers
            logging.getLogger(name).propagate = propagate

    return buffer, undo


@pytest.fixture
def json_lines() -> Iterator[Lines]:
    """Every line written so far, each parsed as one JSON object (a line that is not one fails the test)."""
    buffer, undo = capture("json")
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    undo()


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    buffer, undo = capture("text")
    yield buffer
    undo()


def events(lines: list[dict[str, Any]], name: str, **fields: Any) -> list[dict[str, Any]]:
    return [line for line in lines if line["event"] == name and all(line.get(k) == v for k, v in fields.items())]


def naming(lines: list[dict[str, Any]], name: str, **ref: Any) -> list[dict[str, Any]]:
    """The ``name`` lines whose items include one with these fields."""
    return [line for line in lines if line["event"] == name
            and any(all(item.get(k) == v for k, v in ref.items()) for item in line.get("items", []))]


def post(client: TestClient, record: dict[str, object], headers: dict[str, str | bytes] | None = None) -> Any:
    body = json.dumps(record).encode()
    return client.post("/webhooks/hook", content=body,
                       headers={"X-Feedbackloop-Signature": sign(SECRET, body), **(headers or {})})


def hook_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> FeedbackLoop:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    rules = tmp_path / "rules.toml"
    rules.write_text('[default]\nowner = "payments"\ntarget = "recorder"\n')
    loop = make_loop(f"sqlite:///{tmp_path / 'logs.db'}", rules_file=rules, **overrides)
    with loop.session() as session:
        add_channel(loop, session, "hook", "webhook", secret_env="HOOK_SECRET")
    return loop


def test_one_request_id_follows_an_item_from_webhook_to_ticket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               json_lines: Lines) -> None:
    loop = hook_loop(tmp_path, monkeypatch)
    target = RecordingTarget()
    loop.pm.register(target)
    with TestClient(create_app(loop.settings, loop=loop)) as client:
        request_ids = {}
        for number, text in enumerate(CHECKOUT[:6]):
            answer = post(client, {"id": f"c-{number}", "text": text})
            assert answer.status_code == 202, answer.text
            request_ids[f"c-{number}"] = answer.headers["x-request-id"]
        assert all(GENERATED.fullmatch(value) for value in request_ids.values())
        assert len(set(request_ids.values())) == 6  # one per request
        with loop.session() as session:  # each item keeps the id of the request that created it
            stored = {item.external_id: (item.id, item.request_id) for item in session.scalars(select(FeedbackItem))}
        assert {external_id: request_id for external_id, (_, request_id) in stored.items()} == request_ids

        run_round(loop)  # embedded, and a theme emerges from them
        with loop.session() as session:
            plan_deliveries(loop, session)
        run_round(loop)  # the worker sends the theme's ticket
        followed, (item_id, _) = request_ids["c-2"], stored["c-2"]
        lines = json_lines()

        for line in lines:
            assert {"timestamp", "level", "logger", "event"} <= set(line)
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00", line["timestamp"])
        [request] = events(lines, "http.request", request_id=followed)
        assert (request["route"], request["status"], request["method"]) == ("/webhooks/{channel}", 202, "POST")
        [intake] = events(lines, "webhook.stored", request_id=followed)
        assert (intake["channel"], intake["new_items"], intake["redelivery"]) == ("hook", 1, False)
        [embedded] = naming(lines, "item.embedded", item_id=item_id, request_id=followed)
        assert embedded["logger"] == "core.themes.build" and embedded["model"] == "hash"
        [themed] = naming(lines, "item.themed", item_id=item_id, request_id=followed)
        theme_id = next(item["theme_id"] for item in themed["items"] if item["item_id"] == item_id)
        assert naming(lines, "theme.created", item_id=item_id)[0]["theme_id"] == theme_id
        [ticket] = naming(lines, "ticket.created", item_id=item_id, request_id=followed)
        assert ticket["theme_id"] == theme_id and ticket["level"] == "INFO"
        assert ticket["items_total"] == 6 and {item["request_id"] for item in ticket["items"]} == set(
            request_ids.values())
        with loop.session() as session:
            delivery = session.scalars(select(Delivery)).one()
        assert ticket["external_ref"] == delivery.external_ref == "REC-1" and len(target.calls) == 1
        assert ticket["delivery_id"] == delivery.id and ticket["target_type"] == "recorder"

        # The theme grows: the update names the one item that joined since the ticket was made, not all seven.
        grown = post(client, {"id": "c-6", "text": CHECKOUT[6]})
        run_round(loop)
        lines = json_lines()
        [update] = events(lines, "ticket.updated")
        assert update["external_ref"] == "REC-1" and update["items_total"] == 1
        assert [item["request_id"] for item in update["items"]] == [grown.headers["x-request-id"]]
    loop.close()


def test_request_ids_from_headers_are_taken_only_when_trusted_and_plain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, json_lines: Lines) -> None:
    (tmp_path / "a").mkdir()
    untrusting = hook_loop(tmp_path / "a", monkeypatch)
    with TestClient(create_app(untrusting.settings, loop=untrusting)) as client:
        chosen = client.get("/healthz", headers={"X-Request-ID": "client-chosen-id"})
        assert chosen.headers["x-request-id"] != "client-chosen-id"
        assert GENERATED.fullmatch(chosen.headers["x-request-id"])
    untrusting.close()

    (tmp_path / "b").mkdir()
    loop = hook_loop(tmp_path / "b", monkeypatch, trust_request_id_header=True)
    forged = '"} {"event":"ticket.created","external_ref":"FORGED'
    with TestClient(create_app(loop.settings, loop=loop)) as client:
        assert post(client, {"id": "1", "text": "refund slow"},
                    {"X-Request-ID": "proxy-1.a:b_c"}).headers["x-request-id"] == "proxy-1.a:b_c"
        refused = []
        for value in ("x" * 100_000, forged, "a b", "caf\u00e9".encode("latin-1"), b"line\nbreak", "tab\there", ""):
            answer = post(client, {"id": f"v-{len(refused)}", "text": "refund slow"}, {"X-Request-ID": value})
            assert answer.status_code == 202
            refused.append(answer.headers["x-request-id"])
        assert all(GENERATED.fullmatch(value) for value in refused) and len(set(refused)) == len(refused)
        twice = client.get("/healthz", headers=[("X-Request-ID", "one"), ("X-Request-ID", "two")])
        assert GENERATED.fullmatch(twice.headers["x-request-id"])
        # A channel name is the sender's too (the URL's path): bounded and kept inside its field.
        long_name = client.post("/webhooks/" + "n" * 5000 + "%0A%7B%22event%22%3A%22forged%22%7D", content=b"{}")
        assert long_name.status_code == 404
    loop.close()
    lines = json_lines()  # each line parsed as one JSON object
    assert not any("FORGED" in json.dumps(line) for line in lines if line["event"] != "webhook.rejected")
    assert not [line for line in lines if line["event"] == "forged" or line.get("external_ref") == "FORGED"]
    assert all(len(json.dumps(line)) < 4096 for line in lines)
    stored = events(lines, "webhook.stored")
    assert {line["request_id"] for line in stored} == {"proxy-1.a:b_c", *refused}
    [rejected] = events(lines, "webhook.rejected")
    assert rejected["status"] == 404 and len(rejected["channel"]) < 300 and "\n" not in rejected["channel"][:256]


def test_text_lines_stay_one_line_per_event(text_log: io.StringIO, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    loop = hook_loop(tmp_path, monkeypatch)
    with TestClient(create_app(loop.settings, loop=loop)) as client:
        assert client.post("/webhooks/x%0A2026-01-01%20ERROR%20forged%0D", content=b"{}").status_code == 404
        assert post(client, {"id": "1", "text": "refund slow"}).status_code == 202
    loop.close()
    lines = text_log.getvalue().splitlines()
    # Every line is one event that starts with its time; the newline in the path stays inside its field.
    assert len([line for line in lines if " webhook." in line or " http.request " in line]) == 4, lines
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING) ", line) for line in lines)
    [rejected] = [line for line in lines if " webhook.rejected " in line]
    assert 'channel="x\\n2026-01-01 ERROR forged\\r"' in rejected
    assert " request_id=" in rejected and " status=404" in rejected


def test_a_big_batch_is_named_in_lines_of_bounded_size(json_lines: Lines) -> None:
    refs = [{"item_id": number, "request_id": f"r{number}"} for number in range(2 * MAX_ITEMS_PER_LINE + 1)]
    log_items(logging.getLogger("core.test"), "item.embedded", refs, model="hash")
    lines = json_lines()
    assert [len(line["items"]) for line in lines] == [MAX_ITEMS_PER_LINE, MAX_ITEMS_PER_LINE, 1]
    assert [item["item_id"] for line in lines for item in line["items"]] == list(range(len(refs)))
    assert {line["items_total"] for line in lines} == {len(refs)}


def test_items_from_the_api_keep_their_request_id(client: TestClient, loop: FeedbackLoop) -> None:
    answer = client.post("/api/v1/feedback", headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                         json={"items": [{"text": "refunds are slow"}, {"text": "exports time out"}]})
    assert answer.status_code == 201, answer.text
    with loop.session() as session:
        kept = {item.request_id for item in session.scalars(select(FeedbackItem))}
    assert kept == {answer.headers["x-request-id"]} and GENERATED.fullmatch(answer.headers["x-request-id"])


def test_the_migration_downgrades_and_upgrades(any_loop: FeedbackLoop) -> None:
    with any_loop.session() as session:
        ingest(any_loop, session, [ItemDraft(text="refunds are slow", request_id="r-1")])
    with migrations(any_loop.engine) as schema:
        schema.down("0013-1")
        assert "request_id" not in schema.columns("feedback_items")
        assert "sent_at" not in schema.columns("deliveries")
        schema.up()
    with any_loop.session() as session:  # the item stayed; the id did not survive the downgrade
        assert [item.request_id for item in session.scalars(select(FeedbackItem))] == [None]
