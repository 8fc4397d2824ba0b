from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import LoopDep
from core.channels import MAX_WEBHOOK_BYTES, receive_webhook
from core.intake import InvalidItem
from core.types import WebhookRejected

router = APIRouter(tags=["webhooks"])


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


@router.post("/webhooks/{channel}", status_code=status.HTTP_202_ACCEPTED, operation_id="receive_webhook")
async def webhook(channel: str, request: Request, loop: LoopDep) -> JSONResponse:
    """A delivery for a configured channel; answered only after what it carries is committed."""
    try:
        body = await read_limited(request)
        outcome = await run_in_threadpool(receive_webhook, loop, channel, dict(request.headers), body)
    except WebhookRejected as error:
        return JSONResponse({"detail": error.message}, status_code=error.status_code)
    except InvalidItem as error:
        return JSONResponse({"detail": str(error)}, status_code=422)
    if outcome.ignored is not None:
        return JSONResponse({"status": "ignored", "reason": outcome.ignored}, status_code=202)
    report = outcome.report
    assert report is not None
    return JSONResponse({"status": "accepted", "created": report.created, "updated": report.updated,
                         "duplicates": report.duplicates}, status_code=202)
