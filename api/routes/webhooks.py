"""``POST /webhooks/{channel}``: one delivery, verified by the channel's plugin, answered once committed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from api.deps import IntakeDep
from api.errors import error_responses
from api.request_ids import request_id
from core.intake.channels import MAX_WEBHOOK_BYTES
from core.types import WebhookAnswer, WebhookRejected

router = APIRouter(tags=["webhooks"])
# What a sender can be told: not JSON (400), unsigned (401), no such channel (404), over the size (413),
# unusable items (422), over the channel's rate (429), not stored or not configured (503).
WEBHOOK_ERRORS = error_responses(400, 401, 404, 409, 413, 422, 429, 503)
# A channel type whose sender has its own protocol answers in it instead of the 202 (IntakeResult.answer).
PROTOCOL_ANSWER: dict[int | str, dict[str, Any]] = {200: {
    "description": "The answer the sender's protocol requires (Slack's url_verification challenge as "
                   "text/plain, a slash command's or Teams' reply as JSON), once committed",
    "content": {"application/json": {"schema": {"type": "object"}}, "text/plain": {"schema": {"type": "string"}}}}}
# The body is read raw (its signature covers the bytes), so it is described here rather than by a model.
JSON_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}


async def read_limited(request: Request) -> bytes:
    """The body, refusing (413) anything over the limit without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
        raise WebhookRejected(413, f"body is {declared} bytes; the limit is {MAX_WEBHOOK_BYTES}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_WEBHOOK_BYTES:
            raise WebhookRejected(413, f"body exceeds the limit of {MAX_WEBHOOK_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/webhooks/{channel}", status_code=status.HTTP_202_ACCEPTED, operation_id="receive_webhook",
             responses={**PROTOCOL_ANSWER, **WEBHOOK_ERRORS}, openapi_extra=JSON_BODY)
async def webhook(channel: str, request: Request, intake: IntakeDep) -> Response:
    """A delivery for a configured channel; answered only after what it carries is committed."""
    # Only async dependencies here: FastAPI runs sync ones in a worker thread, a hop per request.
    metrics = request.app.state.metrics
    try:
        body = await read_limited(request)
        outcome = await intake.receive(channel, dict(request.headers), body, await request_id(request))
    except WebhookRejected as rejected:  # an unknown channel is not a label: anyone could make new series
        metrics.count_webhook(None if rejected.status_code == 404 else channel, str(rejected.status_code))
        raise
    metrics.count_webhook(channel, "ignored" if outcome.ignored is not None
                          else "redelivery" if outcome.redelivery else "accepted")
    if outcome.answer is not None:  # the sender's protocol decides the body (Slack's challenge, Teams' reply)
        return protocol_answer(outcome.answer)
    if outcome.ignored is not None:
        return JSONResponse({"status": "ignored", "reason": outcome.ignored}, status_code=202)
    report = outcome.report
    assert report is not None
    return JSONResponse({"status": "redelivery" if outcome.redelivery else "accepted", "created": report.created,
                         "updated": report.updated, "duplicates": report.duplicates, "linked": report.linked,
                         "deleted": report.deleted}, status_code=202)


def protocol_answer(answer: WebhookAnswer) -> Response:
    """JSON for a mapping, text/plain for a string, with the status the plugin chose."""
    if isinstance(answer.body, str):
        return PlainTextResponse(answer.body, status_code=answer.status_code)
    return JSONResponse(dict(answer.body), status_code=answer.status_code)
