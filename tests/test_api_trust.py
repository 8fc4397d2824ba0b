"""The API's promises under stress (issue 14): a 2xx only after the commit, bounded bodies that are never
echoed back, 422 rather than 500 for numbers no column holds or JSON nested too deep, and answers that
match the OpenAPI document (UTC timestamps, the real 422 shape, strict ids, LIKE wildcards as text)."""

from __future__ import annotations

import contextlib
import contextvars
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from api.app import create_app
from api.inputs import INT64_MAX, MAX_METADATA_BYTES
from api.schemas import FeedbackBatch
from core.loop import FeedbackLoop
from core.routing.replies import reply_template, set_reply_template
from core.settings import Settings
from plugins.webhook_signing import MAX_JSON_DEPTH, parse_json
from tests.support.env import ADMIN_KEY
from tests.support.loops import make_loop
from tests.support.themes import CHECKOUT, LOGIN, build_themes
from tests.support.workspace import sign_in

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
UNLIMITED = {"rate_limit_per_key": "", "rate_limit_per_channel": "", "rate_limit_failed_auth_per_address": ""}
TOO_BIG = 2**64


class LateCommitsWait:
    """The app, where a commit that runs after its own request was answered first waits a while, as it
    may on a busy server: a read straight after a 201 then shows whether the write came before the answer."""

    def __init__(self, app: Any, loop: FeedbackLoop) -> None:
        self.app = app
        # The request's "answered" flag; the commit runs in a worker thread that inherits the context.
        self.answered: contextvars.ContextVar[threading.Event] = contextvars.ContextVar("answered")
        event.listen(loop.sessions, "before_commit", self.wait_if_late)

    def wait_if_late(self, _session: Any) -> None:
        flag = self.answered.get(None)
        if flag is not None and flag.is_set():
            time.sleep(0.3)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        flag = threading.Event()
        self.answered.set(flag)

        async def sending(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                flag.set()

        await self.app(scope, receive, sending)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """A real uvicorn server (own thread, file SQLite) on a free port; its base URL."""
    loop = make_loop(f"sqlite:///{tmp_path / 'served.db'}", **UNLIMITED)
    app = LateCommitsWait(create_app(loop.settings, loop=loop), loop)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.02)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
        loop.close()


def test_every_201_is_readable_at_once(served: str) -> None:
    seen = 0
    with httpx.Client(base_url=served, headers=AUTH, timeout=30) as client:
        for number in range(200):
            token = f"readback{number:04d}token"
            created = client.post("/api/v1/feedback", json={"text": f"item {token}", "external_id": token})
            page = client.get("/api/v1/feedback", params={"q": token}).json()
            seen += created.status_code == 201 and page["total"] == 1
    assert seen == 200


def refuse_commit(_session: Any) -> None:
    raise OperationalError("COMMIT", {}, Exception("disk I/O error"))


def test_a_failed_commit_answers_503_not_success(loop: FeedbackLoop) -> None:
    with TestClient(create_app(loop.settings, loop=loop), raise_server_exceptions=False) as client:
        event.listen(loop.sessions, "before_commit", refuse_commit)
        stored = client.post("/api/v1/feedback", json={"text": "lost unless committed"}, headers=AUTH)
        template = client.put("/api/v1/loop/reply-template", json={"template": "Done: $theme"}, headers=AUTH)
        event.remove(loop.sessions, "before_commit", refuse_commit)
        assert client.get("/api/v1/feedback", headers=AUTH).json()["total"] == 0
    for answer in (stored, template):
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == "storage_unavailable"
    with loop.session() as session:
        assert reply_template(session) != "Done: $theme"


@contextlib.contextmanager
def setting_reads_held(loop: FeedbackLoop, writers: int) -> Iterator[None]:
    """Inside the block every writer has read the settings table before any of them writes: the race, certain."""
    barrier = threading.Barrier(writers)

    def after(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "installation_settings" in statement:
            with contextlib.suppress(threading.BrokenBarrierError):  # a writer that never reads frees the rest
                barrier.wait(timeout=10)

    event.listen(loop.engine, "after_cursor_execute", after)
    try:
        yield
    finally:
        event.remove(loop.engine, "after_cursor_execute", after)


def run_together(work: Any, count: int) -> None:
    threads = [threading.Thread(target=work, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


def test_concurrent_writes_of_one_setting_all_succeed(any_loop: FeedbackLoop) -> None:
    writers = 6
    errors: list[BaseException] = []

    def write(number: int) -> None:
        try:
            with any_loop.session() as session:
                set_reply_template(session, f"Template {number}: $theme", actor="test")
        except BaseException as error:
            errors.append(error)

    with setting_reads_held(any_loop, writers):
        run_together(write, writers)
    assert errors == []
    with any_loop.session() as session:
        assert reply_template(session) in {f"Template {number}: $theme" for number in range(writers)}


def test_concurrent_template_puts_all_answer_200_and_stick(loop: FeedbackLoop) -> None:
    writers = 4
    with TestClient(create_app(loop.settings, loop=loop)) as client:
        answers: list[int] = []

        def put(number: int) -> None:
            answers.append(client.put("/api/v1/loop/reply-template", json={"template": f"T{number} $link"},
                                      headers=AUTH).status_code)

        with setting_reads_held(loop, writers):
            run_together(put, writers)
        assert answers == [200] * writers
        assert client.get("/api/v1/loop/reply-template", headers=AUTH).json()["template"] in {
            f"T{number} $link" for number in range(writers)}


@pytest.fixture
def small_limit(tmp_path: Path) -> Iterator[TestClient]:
    loop = make_loop(f"sqlite:///{tmp_path / 'small.db'}", api_max_body_bytes=4096, **UNLIMITED)
    with TestClient(create_app(loop.settings, loop=loop)) as client:
        yield client
    loop.close()


def test_a_body_over_the_limit_is_413_before_it_is_parsed(small_limit: TestClient) -> None:
    not_even_json = b"{" + b"x" * 5000
    declared = small_limit.post("/api/v1/feedback", content=not_even_json,
                                headers={**AUTH, "Content-Type": "application/json"})
    assert declared.status_code == 413 and declared.json()["error"] == "body_too_large"
    assert "4096" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield from (b"x" * 1000 for _ in range(10))

    streamed = small_limit.post("/api/v1/feedback", content=chunks(),
                                headers={**AUTH, "Content-Type": "application/json"})
    assert streamed.status_code == 413 and streamed.json()["error"] == "body_too_large"
    fits = small_limit.post("/api/v1/feedback", json={"text": "small enough"}, headers=AUTH)
    assert fits.status_code == 201


def maximal_item(number: int) -> dict[str, Any]:
    metadata = {"note": "m" * (MAX_METADATA_BYTES - len('{"note":""}'))}
    return {"text": "t" * 20_000, "channel": "c" * 64, "external_id": f"{number:0256d}", "author": "a" * 256,
            "url": "https://example.com/" + "u" * 2028, "created_at": "2026-01-01T00:00:00+00:00",
            "metadata": metadata}


def test_the_default_limit_holds_a_maximal_batch() -> None:
    body = json.dumps({"items": [maximal_item(number) for number in range(1000)]}).encode()
    assert FeedbackBatch.model_validate_json(body)  # every field at its longest is still valid
    assert len(body) <= Settings().api_max_body_bytes


def test_metadata_is_bounded_in_size_and_depth(client: TestClient) -> None:
    too_big = client.post("/api/v1/feedback", json={"text": "x", "metadata": {"blob": "b" * MAX_METADATA_BYTES}},
                          headers=AUTH)
    assert too_big.status_code == 422 and "bytes" in too_big.json()["detail"]
    deep: dict[str, Any] = {}
    for _ in range(20):
        deep = {"level": deep}
    too_deep = client.post("/api/v1/feedback", json={"text": "x", "metadata": deep}, headers=AUTH)
    assert too_deep.status_code == 422 and "levels deep" in too_deep.json()["detail"]
    not_a_number = client.post("/api/v1/feedback", content=b'{"text": "x", "metadata": {"v": NaN}}',
                               headers={**AUTH, "Content-Type": "application/json"})
    assert not_a_number.status_code == 422
    assert client.get("/api/v1/feedback", headers=AUTH).json()["total"] == 0


@pytest.mark.parametrize("body", [
    {"text": "x" * 100_000},
    {"text": "x", "k" * 100_000: 1},
    {"items": [{"text": "x" * 30_000, "bad": "y" * 1000} for _ in range(200)]},
], ids=["long-text", "long-key", "many-bad-items"])
def test_validation_errors_never_echo_large_input(client: TestClient, body: dict[str, Any]) -> None:
    answer = client.post("/api/v1/feedback", json=body, headers=AUTH)
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_request"
    assert len(answer.content) < 8_000, len(answer.content)
    assert "x" * 100 not in answer.text and "k" * 100 not in answer.text  # a long key is named, cut short


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", f"/api/v1/themes/{TOO_BIG}", None),
    ("PATCH", f"/api/v1/themes/{TOO_BIG}", {"label": "x"}),
    ("POST", f"/api/v1/themes/{TOO_BIG}/merge", {"into": 1}),
    ("POST", "/api/v1/themes/1/merge", {"into": TOO_BIG}),
    ("POST", f"/api/v1/themes/{TOO_BIG}/split", {"item_ids": [1], "label": "x"}),
    ("POST", "/api/v1/themes/1/split", {"item_ids": [TOO_BIG], "label": "x"}),
    ("POST", f"/api/v1/feedback/{TOO_BIG}/move", {"theme_id": 1}),
    ("POST", "/api/v1/feedback/1/move", {"theme_id": TOO_BIG}),
    ("POST", f"/api/v1/feedback/{TOO_BIG}/pin", {"theme_id": 1}),
    ("POST", f"/api/v1/deliveries/{TOO_BIG}/retry", None),
    ("GET", f"/api/v1/feedback?theme_id={TOO_BIG}", None),
    ("GET", f"/api/v1/feedback?offset={TOO_BIG}", None),
    ("GET", f"/api/v1/themes/1?offset={TOO_BIG}", None),
    ("POST", "/api/v1/themes/1/split", {"item_ids": [False], "label": "x"}),
    ("POST", "/api/v1/themes/1/merge", {"into": True}),
    ("POST", "/api/v1/feedback/1/move", {"theme_id": "1"}),
])
def test_integers_no_column_holds_and_non_integers_are_422(client: TestClient, method: str, path: str,
                                                          body: dict[str, Any] | None) -> None:
    answer = client.request(method, path, json=body, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_request"


def test_a_workspace_page_with_an_id_no_column_holds_is_422(client: TestClient, loop: FeedbackLoop) -> None:
    """The workspace answers in HTML; signed out it only redirects to the sign-in (nothing is looked up)."""
    assert client.get(f"/themes/{TOO_BIG}", follow_redirects=False).status_code == 303
    sign_in(client, loop)
    answer = client.get(f"/themes/{TOO_BIG}")
    assert answer.status_code == 422 and "<h1>422" in answer.text


def test_the_largest_offset_is_an_empty_page(client: TestClient) -> None:
    client.post("/api/v1/feedback", json={"text": "one"}, headers=AUTH)
    page = client.get("/api/v1/feedback", params={"offset": INT64_MAX}, headers=AUTH)
    assert page.status_code == 200 and page.json()["items"] == []


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
def test_webhook_json_nested_too_deep_is_refused(depth: int) -> None:
    from core.types import WebhookRejected

    with pytest.raises(WebhookRejected) as refused:
        parse_json(b"[" * depth + b"]" * depth)
    assert refused.value.status_code == 400 and "levels deep" in refused.value.message
    assert parse_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) is not None


def test_timestamps_are_utc_with_a_zone(loop: FeedbackLoop) -> None:
    build_themes(loop, CHECKOUT + LOGIN)
    with TestClient(create_app(loop.settings, loop=loop)) as client:
        client.post("/api/v1/feedback", json={"text": "zoned", "created_at": "2026-03-01T12:00:00+02:00"},
                    headers=AUTH)
        items = client.get("/api/v1/feedback", params={"limit": 500}, headers=AUTH).json()["items"]
        zoned = next(item for item in items if item["text"] == "zoned")
        assert zoned["created_at"] in {"2026-03-01T10:00:00Z", "2026-03-01T10:00:00+00:00"}
        assert all(item["created_at"].endswith(("Z", "+00:00")) for item in items)
        # 09:30 to 10:30 UTC, given in another zone: the item of 10:00 UTC is inside
        window = {"since": "2026-03-01T11:30:00+02:00", "until": "2026-03-01T07:30:00-03:00"}
        within = client.get("/api/v1/feedback", params=window, headers=AUTH).json()
        assert [item["text"] for item in within["items"]] == ["zoned"]


def test_the_documented_422_is_the_one_sent(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    responses = document["paths"]["/api/v1/feedback"]["post"]["responses"]
    for status in ("401", "403", "413", "422", "429", "503"):
        assert status in responses
    schema = document["components"]["schemas"][responses["422"]["content"]["application/json"]["schema"]["$ref"]
                                                .rsplit("/", 1)[1]]
    assert schema["properties"]["detail"]["type"] == "string"
    answer = client.post("/api/v1/feedback", json={}, headers=AUTH).json()
    assert isinstance(answer["detail"], str) and set(answer) == {"error", "detail", "errors"}
    assert set(answer["errors"][0]) == {"loc", "msg"}


def test_like_wildcards_in_q_are_plain_text(client: TestClient) -> None:
    client.post("/api/v1/feedback", json={"items": [{"text": "fees went up 50% overnight"},
                                                    {"text": "the app is slow"}, {"text": "snake_case names"}]},
                headers=AUTH)
    search = {q: client.get("/api/v1/feedback", params={"q": q}, headers=AUTH).json()["total"]
              for q in ("%", "_", "50%", "e_c", "\\")}
    assert search == {"%": 1, "_": 1, "50%": 1, "e_c": 1, "\\": 0}


def test_values_the_database_refuses_are_422_not_500(any_loop: FeedbackLoop) -> None:
    """PostgreSQL refuses NUL in text (SQLite keeps it): a refused value is the caller's to fix."""
    with TestClient(create_app(any_loop.settings, loop=any_loop), raise_server_exceptions=False) as client:
        answers = [client.post("/api/v1/feedback", json={"text": "a\u0000b"}, headers=AUTH),
                   client.get("/api/v1/feedback", params={"q": "a\u0000"}, headers=AUTH),
                   client.put("/api/v1/loop/reply-template", json={"template": "a\u0000 $theme"}, headers=AUTH)]
    refused = {"postgresql": 422, "sqlite": None}[any_loop.engine.dialect.name]
    for answer in answers:
        assert answer.status_code < 500, answer.text
        assert refused is None or answer.status_code == refused


def test_domain_errors_are_short_too(client: TestClient) -> None:
    answer = client.patch("/api/v1/themes/1", json={"status": "s" * 100_000}, headers=AUTH)
    assert answer.status_code == 422 and len(answer.content) < 8_000
