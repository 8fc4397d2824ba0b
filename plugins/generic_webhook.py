"""Built-in intake channel type ``webhook``: any tool that can POST signed JSON can feed feedbackloop.

Options (per channel): ``text_field`` (default ``text``), ``id_field`` (``id``), ``author_field``
(``author``), ``url_field`` (``url``), ``created_at_field`` (``created_at``), ``updated_at_field``
(``updated_at``: when the source last edited the record, ISO 8601; an edit older than the stored one is
ignored), ``metadata_fields`` (comma-separated; a later edit of the record may change them),
``deleted_field`` (``deleted``: a record with it true deletes the item with its id),
``signature_tolerance_s`` (300), ``allow_legacy_signatures`` (false) and ``allow_unsigned`` (only for
trusted networks). Fields may be dotted paths. The body is one record or a list of them.

The signature header is ``X-Feedbackloop-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
"<t>.<raw body>")>`` (several ``v1=`` allowed while rotating secrets); a ``t`` more than
``signature_tolerance_s`` from the server's clock is refused, so a captured delivery cannot be replayed
later. The legacy ``sha256=<hex HMAC-SHA256(secret, raw body)>`` is refused unless the channel sets
``allow_legacy_signatures`` (it can be replayed forever). ``X-Feedbackloop-Delivery`` (optional) is the
delivery id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from core import hookimpl
from core.types import ChannelType, IntakeResult, ItemDraft, WebhookRejected, WebhookRequest
from plugins.webhook_signing import parse_json, sign_timestamped, truthy, verify_timestamped

__all__ = ["SIGNATURE_HEADER", "handle_webhook", "register_channel_types", "sign"]

OPTIONS = {
    "text_field": "field holding the text (default text); fields may be dotted paths",
    "id_field": "field holding the record's id (default id)",
    "author_field": "field holding the author (default author)",
    "url_field": "field holding a link to the record (default url)",
    "created_at_field": "field holding when it was written, ISO 8601 (default created_at)",
    "updated_at_field": "field holding when the source last edited it (default updated_at)",
    "metadata_fields": "comma-separated fields kept as metadata",
    "deleted_field": "field that, when true, deletes the item with the record's id (default deleted)",
    "signature_tolerance_s": "how far the signed time may be from the server's clock (default 300)",
    "allow_legacy_signatures": "true: accept the replayable sha256= signature while a sender moves on",
    "allow_unsigned": "true: accept deliveries without a signature (trusted networks only)",
}

SIGNATURE_HEADER = "X-Feedbackloop-Signature"
# What senders (and the tests) sign with: the timestamped scheme.
sign = sign_timestamped


def _field(payload: Any, path: str) -> Any:
    value = payload
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _timestamp(record: dict[str, Any], path: str, index: int) -> datetime | None:
    """An ISO 8601 string or unix seconds (naive times are read as UTC); 422 for anything else."""
    value = _field(record, path)
    if value is None:
        return None
    try:
        if isinstance(value, str):
            return datetime.fromisoformat(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
    except (ValueError, OverflowError, OSError) as error:
        raise WebhookRejected(422, f"record {index}: {path} is not an ISO 8601 date") from error
    raise WebhookRejected(422, f"record {index}: {path} is not an ISO 8601 date")


def handle_webhook(request: WebhookRequest) -> IntakeResult:
    options = request.options
    verify_timestamped(request.secret, request.body, request.headers, SIGNATURE_HEADER, options)
    payload = parse_json(request.body)
    records = payload if isinstance(payload, list) else [payload]
    text_field = str(options.get("text_field", "text"))
    metadata_fields = [f for f in str(options.get("metadata_fields", "")).split(",") if f]
    editable = frozenset(metadata_fields)  # the fields the operator mapped are the record's own, edits included
    deleted_field = str(options.get("deleted_field", "deleted"))
    items, deleted = [], []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise WebhookRejected(422, f"record {index}: expected a JSON object, got {type(record).__name__}")
        external_id = _field(record, str(options.get("id_field", "id")))
        if truthy(_field(record, deleted_field)):
            if external_id is None:
                raise WebhookRejected(422, f"record {index}: a deletion needs the item's id")
            deleted.append(str(external_id))
            continue
        text = _field(record, text_field)
        if not isinstance(text, str) or not text.strip():
            raise WebhookRejected(422, f"record {index}: field '{text_field}' must be a non-empty string")
        created_at = _timestamp(record, str(options.get("created_at_field", "created_at")), index)
        updated_at = _timestamp(record, str(options.get("updated_at_field", "updated_at")), index)
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
                updated_at=updated_at,
                metadata={name: _field(record, name) for name in metadata_fields},
                editable_metadata=editable,
            )
        )
    return IntakeResult(items=items, deleted_ids=deleted, delivery_id=request.headers.get("x-feedbackloop-delivery"))


@hookimpl
def register_channel_types(register: Callable[[ChannelType], None]) -> None:
    register(ChannelType(name="webhook", description="Generic signed JSON webhook with a field mapping",
                         handle_webhook=handle_webhook, options=OPTIONS))
