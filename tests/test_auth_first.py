"""Key first (issue 14, fault 5): /api/v1 answers 401 before a byte of the body is read.

Driven at the ASGI level with a ``receive`` that counts what it hands out: a 40 MB body that the app
pulls is visible as pulled bytes, whatever the server in front would have buffered.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

import api.auth_middleware
from api.app import create_app
from core.auth.api_keys import ApiCaller, create_api_key, revoke_api_key
from core.loop import FeedbackLoop
from tests.support.env import ADMIN_KEY

CHUNK_BYTES = 64 * 1024
BODY_BYTES = 40 * 1024 * 1024


class CountingBody:
    """An ASGI ``receive`` streaming a 40 MB JSON body in chunks, counting the bytes the app pulled."""

    def __init__(self) -> None:
        self.pulled = 0

    async def __call__(self) -> dict[str, Any]:
        if self.pulled >= BODY_BYTES:
            await asyncio.sleep(3600)  # a client that has sent everything waits for the answer
        first = self.pulled == 0
        self.pulled += CHUNK_BYTES
        chunk = (b'{"text": "' + b"x" * (CHUNK_BYTES - 10)) if first else b"x" * CHUNK_BYTES
        return {"type": "http.request", "body": chunk, "more_body": self.pulled < BODY_BYTES}


def call(app: FastAPI, path: str, authorization: str | None, method: str = "POST",
         declared: bool = True) -> tuple[int, dict[str, Any], int]:
    """One request straight into the app: its status, its JSON body, and the body bytes it pulled.

    ``declared=False`` sends no Content-Length (a chunked upload): only reading tells how big it is.
    """
    headers = [(b"content-type", b"application/json")]
    if declared:
        headers.append((b"content-length", str(BODY_BYTES).encode()))
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}
    body, sent = CountingBody(), []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        await asyncio.wait_for(app(scope, body, send), timeout=60)

    asyncio.run(run())
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(content or b"null"), body.pulled


@pytest.fixture
def app(loop: FeedbackLoop) -> FastAPI:
    return create_app(loop.settings, loop=loop)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key", "Basic dXNlcjpwYXNz", "Bearer "])
def test_a_40_mb_body_without_a_valid_key_is_refused_unread(app: FastAPI, authorization: str | None,
                                                            declared: bool) -> None:
    status, answer, pulled = call(app, "/api/v1/feedback", authorization, declared=declared)
    assert status == 401
    assert answer["error"] == "unauthorized" and "Authorization: Bearer" in answer["detail"]
    assert pulled <= CHUNK_BYTES  # not a byte beyond the first chunk (in fact: none)


def test_every_api_route_checks_the_key_before_the_body(app: FastAPI) -> None:
    for method, path in (("PUT", "/api/v1/rules"), ("POST", "/api/v1/themes/1/split"),
                         ("PATCH", "/api/v1/themes/1"), ("POST", "/api/v1/channels"),
                         ("PUT", "/api/v1/loop/reply-template"), ("POST", "/api/v1/no-such-route")):
        status, _, pulled = call(app, path, None, method=method, declared=False)
        assert (status, pulled) == (401, 0), path


def test_a_revoked_key_is_refused_unread(app: FastAPI, loop: FeedbackLoop) -> None:
    with loop.session() as session:
        key = create_api_key(session, "gone", ["intake"])
    with loop.session() as session:
        revoke_api_key(session, "gone")
    status, _, pulled = call(app, "/api/v1/feedback", f"Bearer {key}")
    assert (status, pulled) == (401, 0)


def test_missing_and_admin_keys_need_no_database_and_stored_keys_are_looked_up_off_the_event_loop(
        app: FastAPI, loop: FeedbackLoop, monkeypatch: pytest.MonkeyPatch) -> None:
    with loop.session() as session:
        key = create_api_key(session, "reader", ["read"])
    lookups: list[int] = []
    original = api.auth_middleware.lookup_stored_key

    def watched(loop_: FeedbackLoop, presented: str) -> ApiCaller:
        lookups.append(threading.get_ident())
        return original(loop_, presented)

    monkeypatch.setattr(api.auth_middleware, "lookup_stored_key", watched)
    with TestClient(app) as client:
        assert client.get("/api/v1/feedback").status_code == 401
        assert client.get("/api/v1/feedback", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200
        assert lookups == []
        event_loop_thread: list[int] = []

        @app.get("/api/v1/_thread_probe", include_in_schema=False)
        async def probe() -> dict[str, bool]:
            event_loop_thread.append(threading.get_ident())
            return {"ok": True}

        assert client.get("/api/v1/feedback", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert len(lookups) == 1  # the route's dependency reused the middleware's caller: one lookup
        assert client.get("/api/v1/_thread_probe", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert event_loop_thread and lookups[1] != event_loop_thread[0]


def test_routes_outside_the_api_are_not_behind_the_key(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    signin = client.get("/", follow_redirects=False)  # the workspace has its own sign-in
    assert signin.status_code == 303 and signin.headers["location"].startswith("/signin")
    assert client.post("/webhooks/nowhere", content=b"{}").status_code == 404  # signatures, not keys
    assert client.get("/openapi.json").status_code == 200


def test_a_database_that_cannot_check_keys_is_503_not_500(app: FastAPI, loop: FeedbackLoop,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The key may well be right: the caller is told to retry, in the one error shape."""
    with loop.session() as session:
        key = create_api_key(session, "reader", ["read"])

    def unavailable(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("SELECT ...", {}, Exception("database is locked"))

    monkeypatch.setattr(api.auth_middleware, "authenticate", unavailable)
    status, body, pulled = call(app, "/api/v1/feedback", f"Bearer {key}")
    assert (status, body["error"], pulled) == (503, "storage_unavailable", 0)
