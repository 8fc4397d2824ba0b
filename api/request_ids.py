"""A request id per HTTP request, echoed in ``X-Request-ID`` and logged once the request is answered.

The id is new for every request unless ``FEEDBACKLOOP_TRUST_REQUEST_ID_HEADER`` says a proxy in front sets the
header (core/logs.py checks its shape either way). Routes read it with ``RequestIdDep`` and hand it to the core,
which keeps it on the items the request creates.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import route_template
from core.logs import request_id_for
from core.settings import Settings

HEADER = "X-Request-ID"
log = logging.getLogger(__name__)


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.trusted = settings.trust_request_id_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = [value.decode("latin-1") for name, value in scope["headers"] if name == b"x-request-id"]
        # More than one header is not something a proxy that sets it sends: a new id then.
        request_id = request_id_for(sent[0] if len(sent) == 1 else None, self.trusted)
        scope.setdefault("state", {})["request_id"] = request_id
        started, status = time.perf_counter(), {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info("http.request", extra={"request_id": request_id, "method": scope["method"],
                                            "route": route_template(scope), "status": status["code"],
                                            "duration_ms": round((time.perf_counter() - started) * 1000, 1)})


async def request_id(request: Request) -> str | None:
    """Async, so FastAPI does not hop to a worker thread for it."""
    found = getattr(request.state, "request_id", None)
    return found if isinstance(found, str) else None


RequestIdDep = Annotated[str | None, Depends(request_id)]
