"""A tracker's own status webhook (Jira's ``jira:issue_updated``): the ticket's status moves its theme.

Register ``POST /trackers/jira/webhook`` as a Jira admin webhook with a secret; Jira signs the raw body
with HMAC-SHA256 in ``X-Hub-Signature: sha256=<hex>``. The secret is read from
``FEEDBACKLOOP_JIRA_WEBHOOK_SECRET``; without it the endpoint refuses everything (503). Any target type
that offers ``status_webhook`` gets the same endpoint under its own name.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse

from api.deps import LoopDep
from api.routes.webhooks import JSON_BODY, WEBHOOK_ERRORS, read_limited
from core.routing.tracker_status import receive_status_webhook

router = APIRouter(tags=["trackers"])


@router.post("/trackers/{tracker}/webhook", operation_id="tracker_webhook", status_code=status.HTTP_200_OK,
             responses={**WEBHOOK_ERRORS, 202: {"description": "Received and ignored (the reason is given)"}},
             openapi_extra=JSON_BODY)
async def tracker_webhook(tracker: str, request: Request, loop: LoopDep) -> JSONResponse:
    """Apply an issue's new status to its theme (planned, in progress, done, declined), with an audit entry."""
    body = await read_limited(request)
    outcome = receive_status_webhook(loop, tracker, dict(request.headers), body)
    if outcome.ignored is not None:
        return JSONResponse({"status": "ignored", "reason": outcome.ignored}, status_code=202)
    return JSONResponse({"status": "applied", "theme_id": outcome.theme_id, "tracker_status": outcome.tracker_status,
                         "theme_status": outcome.theme_status, "changed": outcome.changed})
