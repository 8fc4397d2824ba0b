"""Bounded request bodies: an ``/api/v1`` body is read up to ``api_max_body_bytes`` before anything parses it.

Without a bound, FastAPI reads and parses whatever arrives (a 40 MB JSON body grew the server by 157 MB).
This ASGI middleware answers 413 from ``Content-Length`` alone when it is over the limit, and otherwise
reads the body itself, counting the bytes as they arrive (a chunked body declares no length), and hands
the application the bytes it read. It sits inside the key-first middleware (``api/auth_middleware.py``),
so a request without a valid key is refused before a byte of its body is read at all.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body

LIMITED_PREFIX = "/api/v1"


def _too_large(max_bytes: int, declared: str | None = None) -> JSONResponse:
    said = f"the body is {declared} bytes" if declared is not None else "the body is longer than that"
    return JSONResponse(error_body("body_too_large", f"{said}; the limit is {max_bytes} bytes"), status_code=413)


class BodyLimitMiddleware:
    """413 for ``/api/v1`` requests whose body is over ``max_bytes``; the body, read once, otherwise."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == LIMITED_PREFIX or path.startswith(LIMITED_PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await _too_large(self.max_bytes, declared.strip())(scope, receive, send)
            return
        body = await self._read(receive)
        if body is None:
            await _too_large(self.max_bytes)(scope, receive, send)
            return
        await self.app(scope, _replaying(body, receive), send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it passes the limit (the rest is never read)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: the app sees an empty, finished body
                return b"".join(chunks)
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body already read, then whatever the server sends next (a disconnect)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
