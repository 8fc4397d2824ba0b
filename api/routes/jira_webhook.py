"""Jira's ``jira:issue_updated`` webhook: the issue's status moves the theme it was made for.

Register ``POST /trackers/jira/webhook`` as a Jira admin webhook with a secret; Jira signs the raw body
with HMAC-SHA256 in ``X-Hub-Signature: sha256=<hex>``. The secret is read from the environment variable
``FEEDBACKLOOP_JIRA_WEBHOOK_SECRET``; without it the endpoint refuses everything (503), because an
unsigned endpoint would let anyone close themes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse

from api.deps import LoopDep
from core.routing.tracker_status import apply_tracker_status, find_delivery

router = APIRouter(tags=["trackers"])
SECRET_ENV = "FEEDBACKLOOP_JIRA_WEBHOOK_SECRET"
HANDLED_EVENTS = ("jira:issue_updated",)


def _verify(secret: str, body: bytes, signature: str | None) -> None:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if signature is None or not hmac.compare_digest(expected, signature.strip()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="missing or wrong X-Hub-Signature")


def _status_of(payload: Any) -> tuple[tuple[str, ...], str]:
    issue = payload.get("issue") if isinstance(payload, dict) else None
    fields = issue.get("fields") if isinstance(issue, dict) else None
    tracker_status = fields.get("status") if isinstance(fields, dict) else None
    name = tracker_status.get("name") if isinstance(tracker_status, dict) else None
    if not isinstance(issue, dict) or not isinstance(name, str) or not (issue.get("key") or issue.get("id")):
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            detail="payload needs issue.key (or issue.id) and issue.fields.status.name")
    refs = tuple(str(issue[field]) for field in ("key", "id") if issue.get(field))
    return refs, name


@router.post("/trackers/jira/webhook", operation_id="jira_webhook", status_code=status.HTTP_200_OK)
async def jira_webhook(request: Request, loop: LoopDep) -> JSONResponse:
    """Apply an issue's new status to its theme (planned, in progress, done, declined), with an audit entry."""
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"set {SECRET_ENV} to accept Jira webhooks")
    body = await request.body()
    _verify(secret, body, request.headers.get("x-hub-signature"))
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"body is not JSON: {error}") from error
    event = payload.get("webhookEvent") if isinstance(payload, dict) else None
    if event not in HANDLED_EVENTS:
        return JSONResponse({"status": "ignored", "reason": f"event {event!r} is not handled"}, status_code=202)
    refs, tracker_status = _status_of(payload)
    with loop.session() as session:
        delivery = find_delivery(session, ("jira",), refs)
        if delivery is None:
            return JSONResponse({"status": "ignored", "reason": f"no theme has issue {refs[0]}"}, status_code=202)
        moved = apply_tracker_status(loop, session, delivery, tracker_status, source="webhook")
        answer = {"status": "applied", "theme_id": delivery.theme_id, "tracker_status": tracker_status,
                  "theme_status": delivery.theme.status, "changed": moved is not None}
    return JSONResponse(answer)
