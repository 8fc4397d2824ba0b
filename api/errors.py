"""The one place where errors become HTTP answers, all in one shape: ``{"error": code, "detail": message}``.

- A ``FeedbackloopError`` (``core/errors.py``) answers with its own status, code and message.
- A request FastAPI cannot validate answers 422 with code ``invalid_request``, a one-line ``detail`` and
  the problems in ``errors`` (location and message each; the input is never echoed back).
- Starlette's own HTTP errors (unknown route, wrong method) keep their status, with the same shape.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from core.errors import FeedbackloopError

# Long enough for a useful message, short enough that a huge input is never echoed back.
MAX_MESSAGE_CHARS = 300


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail, **extra}


async def domain_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, FeedbackloopError)
    return JSONResponse(error_body(error.code, error.message), status_code=error.status_code,
                        headers=error.headers or None)


async def invalid_request(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [{"loc": [str(part) for part in problem.get("loc", ())],
                 "msg": str(problem.get("msg", ""))[:MAX_MESSAGE_CHARS]} for problem in error.errors()]
    summary = "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems[:5]) or "invalid request"
    return JSONResponse(error_body("invalid_request", summary[:1000], errors=problems[:50]), status_code=422)


async def http_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    code = HTTPStatus(error.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    return JSONResponse(error_body(code, str(error.detail)), status_code=error.status_code,
                        headers=getattr(error, "headers", None))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(FeedbackloopError, domain_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)
