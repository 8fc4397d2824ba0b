"""Key first: every ``/api/v1`` request shows a valid API key before a byte of its body is read.

FastAPI resolves a route's dependencies only after it has read and parsed the body, so a key check in a
dependency alone lets anyone make the server read and parse a large body (the issue's 40 MB). This ASGI
middleware answers 401 from the headers alone; a missing key needs no database, the FEEDBACKLOOP_ADMIN_KEY
none either, and a stored key's lookup runs in a worker thread so the event loop never waits on it. The
caller it found goes into the request scope's state, where the route dependencies (``api/deps.py``) take
it from instead of looking the key up again. Scopes (403) are still checked per route.

Webhooks, tracker webhooks, ``/healthz`` and the dashboard pages are not under ``/api/v1``: they have
their own checks (signatures) or none.
"""

from __future__ import annotations

from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_body
from core.auth.api_keys import ApiCaller, admin_key_caller, authenticate, missing_key
from core.errors import StorageUnavailable, Unauthorized
from core.loop import FeedbackLoop

CALLER_STATE = "api_caller"
PROTECTED_PREFIX = "/api/v1"


def bearer_key(headers: Headers) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, parsed as FastAPI's HTTPBearer does."""
    scheme, _, credentials = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def lookup_stored_key(loop: FeedbackLoop, key: str) -> ApiCaller:
    """A stored key's caller (blocking: a database query); Unauthorized when it is wrong or revoked.

    A database that cannot answer is StorageUnavailable (503, retry later), not a 500 or a 401: the key
    may well be right.
    """
    try:
        with loop.session() as session:
            return authenticate(session, loop.settings, key)
    except OperationalError as error:
        raise StorageUnavailable("the database cannot check API keys right now; retry shortly") from error


async def caller_for(loop: FeedbackLoop, key: str | None) -> ApiCaller:
    """The caller a key stands for, going to a worker thread only when the database has to be asked."""
    if not key:
        raise missing_key()
    admin = admin_key_caller(loop.settings, key)
    if admin is not None:
        return admin
    return await run_in_threadpool(lookup_stored_key, loop, key)


def is_protected(scope: Scope) -> bool:
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):  # behind a proxy's prefix, routes see the rest
        path = path[len(root_path):]
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")


class KeyFirstMiddleware:
    """401 for ``/api/v1`` requests without a valid key, before the body is read; the caller otherwise."""

    def __init__(self, app: ASGIApp, loop: FeedbackLoop) -> None:
        self.app = app
        self.loop = loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_protected(scope):
            await self.app(scope, receive, send)
            return
        try:
            caller = await caller_for(self.loop, bearer_key(Headers(scope=scope)))
        except (Unauthorized, StorageUnavailable) as error:
            # Answered here, outside FastAPI's handlers, in the same shape they use (api/errors.py).
            response = JSONResponse(error_body(error.code, error.message), status_code=error.status_code,
                                    headers=error.headers or None)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})[CALLER_STATE] = caller
        await self.app(scope, receive, send)
