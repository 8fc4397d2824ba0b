"""Typeform responses as a feedbackloop intake channel (an example third-party plugin).

Typeform signs each delivery with ``Typeform-Signature: sha256=<base64 HMAC-SHA256(secret, body)>``
(base64, where most tools use hex) and sends one ``form_response`` event per submitted form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from core import hookimpl
from core.types import ChannelType, IntakeResult, ItemDraft, WebhookRejected, WebhookRequest

TEXT_ANSWERS = {"text", "long_text", "short_text"}


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def handle_webhook(request: WebhookRequest) -> IntakeResult:
    if not request.secret:
        raise WebhookRejected(401, "the typeform channel needs a secret (--secret-env)")
    given = request.headers.get("typeform-signature", "")
    if not hmac.compare_digest(given.encode(), sign(request.secret, request.body).encode()):
        raise WebhookRejected(401, "missing or wrong Typeform-Signature header")
    try:
        event = json.loads(request.body)
    except ValueError as error:
        raise WebhookRejected(400, f"body is not valid JSON: {error}") from error
    if not isinstance(event, dict) or event.get("event_type") != "form_response":
        return IntakeResult(ignored="not a form_response event")
    response = event.get("form_response") or {}
    wanted = {ref.strip() for ref in str(request.options.get("fields", "")).split(",") if ref.strip()}
    hidden = response.get("hidden") or {}
    submitted = response.get("submitted_at")
    items = []
    for answer in response.get("answers") or []:
        field = answer.get("field") or {}
        text = answer.get("text")
        if answer.get("type") not in TEXT_ANSWERS or not isinstance(text, str) or not text.strip():
            continue
        if wanted and field.get("ref") not in wanted:
            continue
        items.append(ItemDraft(
            text=text.strip(),
            channel=request.channel_name,
            # One response can hold several text answers: the answer's field makes each one unique.
            external_id=f"{response.get('token')}:{field.get('id')}",
            author=hidden.get("email") or hidden.get("user_id"),
            created_at=datetime.fromisoformat(submitted.replace("Z", "+00:00")) if submitted else None,
            metadata={"form_id": response.get("form_id"), "question": field.get("ref"),
                      **{key: value for key, value in hidden.items() if key not in {"email", "user_id"}}},
        ))
    if not items:
        return IntakeResult(ignored="the response has no text answers")
    return IntakeResult(items=items, delivery_id=event.get("event_id"))


@hookimpl
def register_channel_types(register: Any) -> None:
    register(ChannelType(name="typeform", description="Typeform form responses (example plugin)",
                         handle_webhook=handle_webhook))
