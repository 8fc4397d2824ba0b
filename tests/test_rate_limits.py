"""Rate limits (api/rate_limits.py): per API key, per webhook channel and tracker, per address for failed
authentication; 429 with Retry-After; /healthz never limited; budgets shared through Redis between apps.

The Redis test needs the server at 127.0.0.1:6379 (FEEDBACKLOOP_TEST_REDIS overrides); with ``CI=true``
it fails instead of skipping, as the PostgreSQL tests do.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.errors import ConfigurationError
from core.loop import FeedbackLoop
from core.models import ApiKey
from core.settings import Settings, get_settings
from tests.support.env import ADMIN_KEY, IN_CI
from tests.support.intake import count_items
from tests.support.loops import make_loop

REDIS_URL = os.environ.get("FEEDBACKLOOP_TEST_REDIS", "redis://127.0.0.1:6379/0")
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def limited_client(stack: ExitStack, url: str, **limits: Any) -> TestClient:
    loop = make_loop(url, **limits)
    stack.callback(loop.close)
    return stack.enter_context(TestClient(create_app(loop.settings, loop=loop)))


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as exit_stack:
        yield exit_stack


def stored_admin_key(loop: FeedbackLoop) -> dict[str, str]:
    """A second, stored admin key (written directly: only its hash is kept, as `feedbackloop keys` does)."""
    token = "fbl_" + secrets.token_urlsafe(24)
    with loop.session() as session:
        session.add(ApiKey(name=f"second-{uuid.uuid4().hex[:8]}", key_hash=hashlib.sha256(token.encode()).hexdigest(),
                           role="admin", scopes=["admin"]))
    return {"Authorization": f"Bearer {token}"}


def assert_rate_limited(response: Any, max_retry_s: int = 60) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["error"] == "rate_limited" and "retry in" in body["detail"], body
    assert 1 <= int(response.headers["Retry-After"]) <= max_retry_s
    assert response.headers["x-content-type-options"] == "nosniff"  # the security headers reach a 429 too


def test_a_key_past_its_budget_gets_429_with_retry_after(stack: ExitStack, sqlite_url: str) -> None:
    client = limited_client(stack, sqlite_url, rate_limit_per_key="3/minute")
    for _ in range(3):
        assert client.get("/api/v1/feedback", headers=ADMIN).status_code == 200
    refused = client.post("/api/v1/feedback", json={"text": "one too many"}, headers=ADMIN)
    assert_rate_limited(refused)
    assert "this API key" in refused.json()["detail"]
    assert count_items(client.app.state.loop) == 0  # type: ignore[attr-defined]  # the refused item is not stored


def test_every_key_has_its_own_budget(stack: ExitStack, sqlite_url: str) -> None:
    loop = make_loop(sqlite_url, rate_limit_per_key="2/minute")
    stack.callback(loop.close)
    client = stack.enter_context(TestClient(create_app(loop.settings, loop=loop)))
    second = stored_admin_key(loop)
    for _ in range(2):
        assert client.get("/api/v1/themes", headers=ADMIN).status_code == 200
    assert_rate_limited(client.get("/api/v1/themes", headers=ADMIN))
    assert client.get("/api/v1/themes", headers=second).status_code == 200
    assert client.get("/api/v1/themes", headers=second).status_code == 200
    assert_rate_limited(client.get("/api/v1/themes", headers=second))


def test_every_channel_and_tracker_has_its_own_budget(stack: ExitStack, sqlite_url: str) -> None:
    client = limited_client(stack, sqlite_url, rate_limit_per_channel="2/minute")
    for path in ("/webhooks/forum", "/webhooks/shop", "/trackers/jira/webhook"):
        for _ in range(2):  # unsigned or unknown: refused by the route, but counted against the channel
            assert client.post(path, content=b"{}").status_code != 429
        refused = client.post(path, content=b"{}")
        assert_rate_limited(refused)
        assert "this channel" in refused.json()["detail"]
    # The API's budget is the key's, not the channel's.
    assert client.post("/api/v1/feedback", json={"text": "still fine", "channel": "forum"},
                       headers=ADMIN).status_code == 201


def test_healthz_and_the_workspace_are_never_limited(stack: ExitStack, sqlite_url: str) -> None:
    client = limited_client(stack, sqlite_url, rate_limit_per_key="1/minute", rate_limit_per_channel="1/minute",
                            rate_limit_failed_auth_per_address="1/minute")
    for _ in range(30):
        assert client.get("/healthz").status_code == 200
    for _ in range(5):
        assert client.get("/signin").status_code == 200
        assert client.get("/openapi.json").status_code == 200


def test_failed_authentication_is_limited_per_address(stack: ExitStack, sqlite_url: str) -> None:
    """A guesser gets a fresh per-key budget with every token it tries; its address's budget stops it."""
    client = limited_client(stack, sqlite_url, rate_limit_failed_auth_per_address="3/minute")
    for attempt in range(3):
        guess = {"Authorization": f"Bearer guess-{attempt}"}
        assert client.get("/api/v1/feedback", headers=guess).status_code == 401
    refused = client.get("/api/v1/feedback", headers={"Authorization": "Bearer guess-3"})
    assert_rate_limited(refused)
    assert "failed authentications" in refused.json()["detail"]
    assert_rate_limited(client.get("/api/v1/feedback"))  # no key at all: the same address's budget
    # Decided: the address is blocked as a whole until its window moves on, a right key from it included.
    assert_rate_limited(client.get("/api/v1/feedback", headers=ADMIN))
    assert client.get("/healthz").status_code == 200


def test_successful_requests_do_not_spend_the_failed_authentication_budget(stack: ExitStack, sqlite_url: str) -> None:
    client = limited_client(stack, sqlite_url, rate_limit_failed_auth_per_address="2/minute")
    for _ in range(10):
        assert client.get("/api/v1/feedback", headers=ADMIN).status_code == 200


def test_an_empty_limit_switches_it_off(stack: ExitStack, sqlite_url: str) -> None:
    client = limited_client(stack, sqlite_url, rate_limit_per_key="", rate_limit_per_channel="")
    for _ in range(50):
        assert client.get("/api/v1/themes", headers=ADMIN).status_code == 200
        assert client.post("/webhooks/forum", content=b"{}").status_code != 429


def test_limits_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PER_KEY", "PER_CHANNEL", "FAILED_AUTH_PER_ADDRESS", "STORAGE"):
        monkeypatch.delenv(f"FEEDBACKLOOP_RATE_LIMIT_{name}", raising=False)
    defaults = Settings()
    assert (defaults.rate_limit_per_key, defaults.rate_limit_per_channel, defaults.rate_limit_failed_auth_per_address,
            defaults.rate_limit_storage) == ("600/minute", "1200/minute", "30/minute", "memory://")
    monkeypatch.setenv("FEEDBACKLOOP_RATE_LIMIT_PER_KEY", "5/second;100/hour")
    monkeypatch.setenv("FEEDBACKLOOP_RATE_LIMIT_PER_CHANNEL", "7/minute")
    monkeypatch.setenv("FEEDBACKLOOP_RATE_LIMIT_FAILED_AUTH_PER_ADDRESS", "9/minute")
    monkeypatch.setenv("FEEDBACKLOOP_RATE_LIMIT_STORAGE", "redis://127.0.0.1:6379/3")
    get_settings.cache_clear()
    try:
        settings = get_settings()
    finally:
        get_settings.cache_clear()
    assert (settings.rate_limit_per_key, settings.rate_limit_per_channel, settings.rate_limit_failed_auth_per_address,
            settings.rate_limit_storage) == ("5/second;100/hour", "7/minute", "9/minute", "redis://127.0.0.1:6379/3")


@pytest.mark.parametrize(("variable", "value"), [
    ("FEEDBACKLOOP_RATE_LIMIT_PER_KEY", "lots"),
    ("FEEDBACKLOOP_RATE_LIMIT_PER_CHANNEL", "0/minute"),
    ("FEEDBACKLOOP_RATE_LIMIT_FAILED_AUTH_PER_ADDRESS", "30/fortnight"),
    ("FEEDBACKLOOP_RATE_LIMIT_STORAGE", "mysql://db"),
])
def test_a_malformed_limit_is_a_configuration_error_naming_it(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                              value: str) -> None:
    monkeypatch.setenv(variable, value)
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match=variable):
            get_settings()
    finally:
        get_settings.cache_clear()


def test_a_storage_that_is_down_does_not_take_the_api_down(stack: ExitStack, sqlite_url: str) -> None:
    """Decided: fail open (logged); refusing every request because Redis is away would stop intake."""
    client = limited_client(stack, sqlite_url, rate_limit_storage="redis://127.0.0.1:1/0")
    assert client.get("/api/v1/feedback", headers=ADMIN).status_code == 200
    assert client.get("/api/v1/feedback").status_code == 401


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError:
        if IN_CI:
            pytest.fail(f"Redis is required with CI=true but {REDIS_URL} is not reachable")
        pytest.skip("Redis not reachable (runs, never skips, with CI=true)")
    return REDIS_URL


@pytest.mark.redis
def test_two_apps_sharing_redis_share_one_budget(stack: ExitStack, sqlite_url: str, redis_url: str) -> None:
    """What `serve --workers N` or several hosts need: one budget, wherever the request lands."""
    limits = {"rate_limit_per_key": "4/minute", "rate_limit_per_channel": "3/minute", "rate_limit_storage": redis_url}
    first = limited_client(stack, sqlite_url, **limits)
    second = limited_client(stack, sqlite_url, **limits)
    loop: FeedbackLoop = first.app.state.loop  # type: ignore[attr-defined]
    key = stored_admin_key(loop)  # new for this run: budgets left in Redis by an earlier run do not count
    for client in (first, second, first, second):
        assert client.get("/api/v1/themes", headers=key).status_code == 200
    assert_rate_limited(first.get("/api/v1/themes", headers=key))
    assert_rate_limited(second.get("/api/v1/themes", headers=key))

    channel = f"/webhooks/shared-{uuid.uuid4().hex}"
    for client in (first, second, second):
        assert client.post(channel, content=b"{}").status_code != 429
    assert_rate_limited(first.post(channel, content=b"{}"))
    # A budget of the same size in per-process memory is not shared: the second app's is untouched.
    separate = [limited_client(stack, sqlite_url, rate_limit_per_channel="3/minute") for _ in range(2)]
    for client in (separate[0], separate[0], separate[0], separate[1]):
        assert client.post(channel, content=b"{}").status_code != 429
