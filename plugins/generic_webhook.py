"""Built-in intake channel type ``webhook``: any tool that can POST signed JSON can feed feedbackloop.

Options (per channel): ``text_field`` (default ``text``), ``id_field`` (``id``), ``author_field``
(``author``), ``url_field`` (``url``), ``created_at_field`` (``created_at``), ``metadata_fields``
(comma-separated), and ``allow_unsigned`` (only for trusted networks). Fields may be dotted paths.
The signature header is ``X-Feedbackloop-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from core import hookimpl
from core.types import ChannelType, IntakeResult, ItemDraft, WebhookRejected, WebhookRequest

SIGNATURE_HEADER = "x-feedbackloop-signature"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _field(payload: Any, path: str) -> Any:
    value = payload
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _truthy(value: Any) -> bool:
    return str(value).lower() in {"1", "true", "yes", "on"}


def handle_webhook(request: WebhookRequest) -> IntakeResult:
    options = request.options
    if request.secret:
        given = request.headers.get(SIGNATURE_HEADER, "")
        if not hmac.compare_digest(given, sign(request.secret, request.body)):
            raise WebhookRejected(401, f"missing or wrong {SIGNATURE_HEADER} header")
    elif not _truthy(options.get("allow_unsigned", False)):
        raise WebhookRejected(401, "this channel has no secret configured; refusing unsigned deliveries")
    try:
        payload = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WebhookRejected(400, f"body is not valid JSON: {error}") from error
    records = payload if isinstance(payload, list) else [payload]
    text_field = str(options.get("text_field", "text"))
    metadata_fields = [f for f in str(options.get("metadata_fields", "")).split(",") if f]
    items = []
    for index, record in enumerate(records):
        text = _field(record, text_field)
        if not isinstance(text, str) or not text.strip():
            raise WebhookRejected(422, f"record {index}: field '{text_field}' must be a non-empty string")
        created = _field(record, str(options.get("created_at_field", "created_at")))
        try:
            created_at = datetime.fromisoformat(created) if isinstance(created, str) else None
        except ValueError as error:
            raise WebhookRejected(422, f"record {index}: created_at is not an ISO 8601 date") from error
        external_id = _field(record, str(options.get("id_field", "id")))
        author = _field(record, str(options.get("author_field", "author")))
        url = _field(record, str(options.get("url_field", "url")))
        items.append(
            ItemDraft(
                text=text,
                channel=request.channel_name,
                external_id=str(external_id) if external_id is not None else None,
                author=str(author) if author is not None else None,
                url=str(url) if url is not None else None,
                created_at=created_at,
                metadata={name: _field(record, name) for name in metadata_fields},
            )
        )
    return IntakeResult(items=items, delivery_id=request.headers.get("x-feedbackloop-delivery"))


@hookimpl
def register_channel_types(register: Any) -> None:
    register(ChannelType(name="webhook", description="Generic signed JSON webhook with a field mapping",
                         handle_webhook=handle_webhook))
