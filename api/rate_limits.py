"""Rate limits, a pure ASGI middleware over the `limits` library (moving windows, storage from a setting).

Budgets (``FEEDBACKLOOP_RATE_LIMIT_*`` in core/settings.py):

- per API key on ``/api/v1``: the key is known by the SHA-256 of its bearer token, so no database lookup
  happens before a request is counted (and the token itself is never stored);
- per channel on ``/webhooks/{channel}`` and per tracker on ``/trackers/{tracker}/webhook``;
- per client address for failed authentication: every ``/api/v1`` answer 401 (no key, or a wrong one)
  spends one, and an address that has spent its budget gets 429 on ``/api/v1`` until the window has moved
  on, whatever key it sends. A guesser cycling through tokens would get a fresh per-key budget with every
  token; this budget is what slows guessing down.

``/healthz``, the dashboard and the documentation are never limited. A refused request gets 429, the one
error shape and ``Retry-After`` in seconds. The moving window is exact (no double burst at a window's
edge); its cost is one stored timestamp per request in the window, small at these limits.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import ConfigurationError as LimitsConfigurationError
from limits.errors import StorageError
from limits.storage import storage_from_string
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body
from core.errors import ConfigurationError
from core.settings import Settings

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
# Keys in a shared storage carry this prefix, so several applications can share one Redis.
STORAGE_PREFIX = "feedbackloop"


@dataclass(frozen=True)
class Budget:
    """One rate limit: what it is called in a 429's message, and its windows ("20/second;600/minute" is two)."""

    subject: str
    windows: tuple[RateLimitItem, ...]

    @classmethod
    def parse(cls, subject: str, value: str) -> Budget:
        return cls(subject, tuple(parse_many(value)) if value.strip() else ())


@dataclass(frozen=True)
class Refusal:
    detail: str
    retry_after_s: int


def make_storage(uri: str) -> Storage:
    """The asyncio storage for a setting such as ``memory://`` or ``redis://host:6379/0``."""
    options: dict[str, str] = {}
    if uri.startswith("redis"):
        # redis-py's asyncio client (a dependency); the library's default, coredis, is not installed.
        options = {"implementation": "redispy", "key_prefix": STORAGE_PREFIX}
    try:  # wrap_exceptions: the storage's own errors (Redis down) all arrive as StorageError
        storage = storage_from_string(f"async+{uri}", wrap_exceptions=True, **options)
    except LimitsConfigurationError as error:
        raise ConfigurationError(f"FEEDBACKLOOP_RATE_LIMIT_STORAGE: {error}") from error
    assert isinstance(storage, Storage)  # the async+ schemes give asyncio storages
    return storage


class RateLimits:
    """The budgets of one application and the limiter that spends them."""

    def __init__(self, settings: Settings) -> None:
        self.per_key = Budget.parse("this API key", settings.rate_limit_per_key)
        self.per_channel = Budget.parse("this channel", settings.rate_limit_per_channel)
        self.failed_auth = Budget.parse("failed authentications from this address",
                                        settings.rate_limit_failed_auth_per_address)
        self.limiter = MovingWindowRateLimiter(make_storage(settings.rate_limit_storage))

    async def spend(self, budget: Budget, *identity: str) -> Refusal | None:
        """Count one request against every window of the budget; a refusal when one is spent."""
        for window in budget.windows:
            if not await self.limiter.hit(window, *identity):
                return await self._refusal(budget, window, identity)
        return None

    async def check(self, budget: Budget, *identity: str) -> Refusal | None:
        """Whether the budget still has room, without spending any of it."""
        for window in budget.windows:
            if not await self.limiter.test(window, *identity):
                return await self._refusal(budget, window, identity)
        return None

    async def _refusal(self, budget: Budget, window: RateLimitItem, identity: tuple[str, ...]) -> Refusal:
        stats = await self.limiter.get_window_stats(window, *identity)
        retry_after_s = max(1, math.ceil(stats.reset_time - time.time()))
        return Refusal(f"more than {window} for {budget.subject}; retry in {retry_after_s} s", retry_after_s)


def bearer_token(scope: Scope) -> str | None:
    name: bytes
    value: bytes
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def key_identity(token: str) -> str:
    """Who a key is for the limiter: its SHA-256, which needs no database and never stores the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"  # no peer address (a Unix socket): one shared budget


def route_path(scope: Scope) -> str:
    """The path the routes match: without the prefix a reverse proxy serves the app under (``root_path``)."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    return path[len(root_path):] if root_path and path.startswith(root_path) else path


def channel_of(path: str) -> tuple[str, str] | None:
    """The webhook channel or tracker a path is addressed to: ("channel", name), ("tracker", name) or None."""
    parts = path.strip("/").split("/")
    if len(parts) == 2 and parts[0] == "webhooks":
        return "channel", parts[1]
    if len(parts) == 3 and parts[0] == "trackers" and parts[2] == "webhook":
        return "tracker", parts[1]
    return None


class RateLimitMiddleware:
    """Answers 429 before the application sees a request that is over one of its budgets."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limits = RateLimits(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        is_api = path == API_PREFIX or path.startswith(API_PREFIX + "/")
        try:
            refusal = await (self._api_refusal(scope) if is_api else self._channel_refusal(path))
        except StorageError as error:  # a shared storage that is down must not take intake down with it
            log.warning("rate limits not applied, their storage failed: %s", error)
            refusal = None
        if refusal is not None:
            await refuse(refusal, scope, receive, send)
        elif is_api:
            await self.app(scope, receive, self._counting_failed_auth(scope, send))
        else:
            await self.app(scope, receive, send)

    async def _channel_refusal(self, path: str) -> Refusal | None:
        channel = channel_of(path)
        return None if channel is None else await self.limits.spend(self.limits.per_channel, *channel)

    async def _api_refusal(self, scope: Scope) -> Refusal | None:
        refusal = await self.limits.check(self.limits.failed_auth, "address", client_address(scope))
        if refusal is None and (token := bearer_token(scope)) is not None:
            refusal = await self.limits.spend(self.limits.per_key, "key", key_identity(token))
        return refusal

    def _counting_failed_auth(self, scope: Scope, send: Send) -> Send:
        """``send``, spending the address's failed-authentication budget when the answer is 401."""
        address = client_address(scope)

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                try:
                    await self.limits.spend(self.limits.failed_auth, "address", address)
                except StorageError as error:
                    log.warning("a failed authentication was not counted, the storage failed: %s", error)
            await send(message)

        return counting_send


async def refuse(refusal: Refusal, scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse(error_body("rate_limited", refusal.detail), status_code=429,
                            headers={"Retry-After": str(refusal.retry_after_s)})
    await response(scope, receive, send)
