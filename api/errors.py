"""The one place where errors become HTTP answers, all in one shape: ``{"error": code, "detail": message}``.

- A ``FeedbackloopError`` (``core/errors.py``) answers with its own status, code and message.
- A request FastAPI cannot validate answers 422 with code ``invalid_request``, a one-line ``detail`` and
  the problems in ``errors`` (location and message each; the input is never echoed back, and every part
  is cut short, so a huge input cannot make a huge answer).
- Starlette's own HTTP errors (unknown route, wrong method) keep their status, with the same shape.

The same shapes are what the OpenAPI document promises: ``error_responses`` is the one table of error
answers the routers declare, so FastAPI's own ``HTTPValidationError`` (a list in ``detail``) never appears.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from core.errors import FeedbackloopError

# Long enough for a useful message, short enough that a huge input is never echoed back.
MAX_MESSAGE_CHARS = 300
# A location names fields and list positions; keys of a client's dict can be long, so they are cut too.
MAX_LOCATION_PART_CHARS = 64
MAX_LOCATION_PARTS = 8
MAX_PROBLEMS = 20
MAX_SUMMARY_CHARS = 1000
# Domain messages are ours, but may quote a value the caller sent.
MAX_DETAIL_CHARS = 2000


class ErrorBody(BaseModel):
    """Every error answer."""

    error: str = Field(description="The kind of error, for machines: not_found, conflict, invalid_request...")
    detail: str = Field(description="What went wrong and what to do, for people.")


class Problem(BaseModel):
    loc: list[str] = Field(description="Where: body, query, path or header, then field names and positions.")
    msg: str = Field(description="What is wrong there; the input itself is never repeated.")


class ValidationErrorBody(ErrorBody):
    """A 422: a malformed request lists its problems in ``errors``; input that is well-formed but unusable
    (a rules file with a mistake, an unknown status) has only ``detail``."""

    errors: list[Problem] = Field(default_factory=list, description=f"At most {MAX_PROBLEMS} problems.")


ERROR_DESCRIPTIONS = {
    400: "The body cannot be read as what this endpoint takes (not UTF-8 JSON, not a known kind)",
    401: "No API key, or a wrong or revoked one (a webhook: a missing or wrong signature)",
    403: "The key is valid but lacks the scope this needs",
    404: "Nothing with that id or name",
    409: "The request is fine, but the state it meets does not allow it",
    413: "The body is over the size limit; nothing was read past it",
    422: "A malformed request (see `errors`), or input that cannot be used (see `detail`)",
    429: "Too many requests for this key, channel or address; `Retry-After` says when to try again",
    503: "Nothing was stored (the database did not keep the write, or the endpoint is not configured); retry",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds until the budget allows a request again",
                               "schema": {"type": "integer"}}}
# What any /api/v1 route can answer: a body that is not JSON text, no or wrong key, missing scope, body
# over the limit, malformed input, rate limit.
API_ERRORS = (400, 401, 403, 413, 422, 429)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers for ``responses=`` of a router or a route, from the one table above."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ValidationErrorBody if status == 422 else ErrorBody,
                                 "description": ERROR_DESCRIPTIONS[status]}
        if status == 429:
            entry["headers"] = RETRY_AFTER
        documented[status] = entry
    return documented


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail, **extra}


def _page_error(request: Request, status_code: int, message: str) -> Response | None:
    """The workspace's HTML answer for an error on one of its pages; None on the API's paths."""
    renderer = getattr(request.app.state, "page_error", None)
    pages = getattr(request.app.state, "is_page_path", None)
    if renderer is None or pages is None or not pages(request.url.path):
        return None
    answer: Response = renderer(request, status_code, message)
    return answer


async def domain_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, FeedbackloopError)
    if (page := _page_error(request, error.status_code, error.message)) is not None:
        return page
    return JSONResponse(error_body(error.code, _short(error.message, MAX_DETAIL_CHARS)), status_code=error.status_code,
                        headers=error.headers or None)


def _short(value: object, limit: int) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


async def invalid_request(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    found = error.errors()
    if (page := _page_error(request, 422, "; ".join(
            f"{'.'.join(str(p) for p in problem.get('loc', ()))}: {problem.get('msg', '')}"
            for problem in found[:5]))) is not None:
        return page
    problems = [{"loc": [_short(part, MAX_LOCATION_PART_CHARS) for part in problem.get("loc", ())][:MAX_LOCATION_PARTS],
                 "msg": _short(problem.get("msg", ""), MAX_MESSAGE_CHARS)} for problem in found[:MAX_PROBLEMS]]
    summary = "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems[:5]) or "invalid request"
    if len(found) > len(problems):
        summary = f"{len(found)} problems, the first {len(problems)} listed; " + summary
    return JSONResponse(error_body("invalid_request", _short(summary, MAX_SUMMARY_CHARS), errors=problems),
                        status_code=422)


async def http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if (page := _page_error(request, error.status_code, str(error.detail))) is not None:
        return page
    code = HTTPStatus(error.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    return JSONResponse(error_body(code, _short(error.detail, MAX_MESSAGE_CHARS)), status_code=error.status_code,
                        headers=getattr(error, "headers", None))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(FeedbackloopError, domain_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)
