"""Built-in intake channel type ``zendesk``: a Zendesk webhook subscribed to ticket events.

In Admin Center > Apps and integrations > Webhooks, create a webhook with the connection method "Zendesk
events", subscribe it to ticket events (at least ``ticket.created`` and ``ticket.comment_added``) and
point it at ``/webhooks/NAME``; its signing secret goes in the channel's ``--secret-env`` variable.
Zendesk signs ``base64(HMAC-SHA256(secret, timestamp + body))`` in ``X-Zendesk-Webhook-Signature``, with
the timestamp in ``X-Zendesk-Webhook-Signature-Timestamp``: a timestamp further than
``signature_tolerance_s`` (default 300) from the server's clock is refused, so a captured delivery cannot
be replayed later. Webhooks connected to a trigger or automation send a body the admin wrote; they are
answered 202 ignored (their shape is not Zendesk's to guarantee).

A ticket is one item (``ticket-<id>``, its subject and description, by its requester); public comments
by end users are items of their own (``comment-<id>``) in the ticket's thread. The ticket's first comment
is its description, so it is the ticket item, not a second one. Agents' public comments are "staff" and
stored only with ``include_agent_comments``; internal notes never. Edits of the subject or description
update the ticket; status, priority, tag, type and organisation changes update its metadata; comments made
private or redacted are deleted; soft-deleted, permanently deleted and spam tickets are deleted, undeleted
ones restored. The ticket's organisation id is metadata ``organization`` (for ``impact_key`` /
``tier_field``); names and e-mails, which ticket events carry for authors, are never kept.

Options: ``zendesk_url`` (``https://SUBDOMAIN.zendesk.com``, for links), ``include_agent_comments``
(default false), ``exclude_tags`` (comma-separated), ``signature_tolerance_s``, ``allow_unsigned``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from core import hookimpl
from core.clock import parse_timestamp
from core.types import ChannelType, IntakeResult, ItemDraft, WebhookRejected, WebhookRequest
from plugins.webhook_signing import (
    DEFAULT_TOLERANCE_S,
    UNSIGNED_OPTION,
    as_object,
    metadata_number,
    parse_json,
    split_option,
    text_id,
    truthy,
)

OPTIONS = {
    **UNSIGNED_OPTION,
    "zendesk_url": "your Zendesk, https://SUBDOMAIN.zendesk.com, for links to tickets",
    "include_agent_comments": "true: store agents' public comments too, as staff (default false)",
    "exclude_tags": "comma-separated ticket tags whose tickets and comments are skipped",
    "signature_tolerance_s": "how far (seconds) a signature's timestamp may be from this server's clock (300)",
}
SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
EVENT_PREFIX = "zen:event-type:ticket."
# Events that carry the ticket's current subject and description: the ticket item is (re)built from them.
TEXT_EVENTS = {"created", "description_changed", "subject_changed", "undeleted"}
# Events that change only what the ticket's metadata says.
METADATA_EVENTS = {"status_changed", "custom_status_changed", "priority_changed", "tags_changed",
                   "organization_changed", "type_changed"}
TICKET_DELETIONS = {"soft_deleted", "permanently_deleted", "marked_as_spam"}
COMMENT_DELETIONS = {"comment_made_private", "comment_redacted"}
TICKET_EDITABLE = frozenset({"status", "priority", "ticket_type", "tags", "organization"})
COMMENT_EDITABLE = frozenset({"organization"})


def _tolerance(options: Mapping[str, Any]) -> float:
    value = options.get("signature_tolerance_s", DEFAULT_TOLERANCE_S)
    try:
        tolerance = float(value)
    except (TypeError, ValueError):
        tolerance = -1.0
    if not 0 < tolerance < float("inf"):  # the operator's mistake: 503 makes Zendesk retry later
        raise WebhookRejected(503, f"channel option signature_tolerance_s={value!r} must be a positive number")
    return tolerance


def zendesk_signature(secret: str, timestamp: str, body: bytes) -> str:
    """What Zendesk sends in ``X-Zendesk-Webhook-Signature`` for this timestamp and body."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify(request: WebhookRequest, now: float | None = None) -> None:
    """Refuse (401) a delivery whose signature is missing, wrong, or made outside the tolerance."""
    if not request.secret:
        if truthy(request.options.get("allow_unsigned", False)):
            return
        raise WebhookRejected(401, "this channel has no secret configured; refusing unsigned deliveries")
    signature = request.headers.get(SIGNATURE_HEADER.lower(), "").strip()
    timestamp = request.headers.get(TIMESTAMP_HEADER.lower(), "").strip()
    if not signature or not timestamp:
        raise WebhookRejected(401, f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
    moment = parse_timestamp(timestamp)
    if moment is None or moment.tzinfo is None:
        raise WebhookRejected(401, f"malformed {TIMESTAMP_HEADER}: expected an ISO 8601 time such as "
                                   "2021-03-25T05:09:27Z")
    tolerance = _tolerance(request.options)
    drift = (time.time() if now is None else now) - moment.timestamp()
    if abs(drift) > tolerance:
        raise WebhookRejected(401, f"{TIMESTAMP_HEADER} is {drift:.0f} s from this server's clock; the tolerance "
                                   f"is {tolerance:.0f} s (a replayed delivery, or a clock to set right)")
    expected = zendesk_signature(request.secret, timestamp, request.body)
    # Constant-time comparison: timing must not reveal how much of a forged signature was right.
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise WebhookRejected(401, f"wrong {SIGNATURE_HEADER}: the body was not signed with this channel's secret")


def handle_webhook(request: WebhookRequest) -> IntakeResult:
    verify(request)
    payload = parse_json(request.body)
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "a Zendesk event body must be a JSON object")
    event_type = payload.get("type")
    if not isinstance(event_type, str) or not event_type.startswith("zen:event-type:"):
        return IntakeResult(ignored="not a Zendesk event-subscription event (a webhook connected to a trigger "
                                    "or automation sends its own body; subscribe the webhook to ticket events)")
    if not event_type.startswith(EVENT_PREFIX):
        return IntakeResult(ignored=f"Zendesk event {event_type!r} is not about a ticket")
    detail = payload.get("detail")
    if not isinstance(detail, dict) or not text_id(detail.get("id")):
        raise WebhookRejected(400, "a Zendesk ticket event needs a 'detail' object with the ticket's 'id'")
    event = as_object(payload.get("event"))
    result = _dispatch(request.options, event_type.removeprefix(EVENT_PREFIX), detail, event,
                       parse_timestamp(payload.get("time")))
    # The event id is in the signed body: a retry repeats it, and nobody can mark another delivery as seen.
    result.delivery_id = text_id(payload.get("id")) or None
    return result


def _dispatch(options: Mapping[str, Any], name: str, detail: dict[str, Any], event: dict[str, Any],
              occurred: datetime | None) -> IntakeResult:
    ticket_id = text_id(detail["id"])
    if name in TICKET_DELETIONS:
        return IntakeResult(deleted_ids=[f"ticket-{ticket_id}"])
    if name in COMMENT_DELETIONS:
        comment_id = text_id(as_object(event.get("comment")).get("id"))
        if not comment_id:
            raise WebhookRejected(400, f"a Zendesk {name} event needs 'event.comment.id'")
        return IntakeResult(deleted_ids=[f"comment-{comment_id}"])
    if name not in TEXT_EVENTS | METADATA_EVENTS | {"comment_added"}:
        return IntakeResult(ignored=f"Zendesk ticket event {name!r} is not handled")
    excluded = split_option(options, "exclude_tags") & {tag.lower() for tag in _tags(detail)}
    if excluded:
        return IntakeResult(ignored=f"tag {sorted(excluded)[0]!r} is excluded")
    if name == "comment_added":
        return _comment(options, detail, as_object(event.get("comment")), occurred)
    restored = [f"ticket-{ticket_id}"] if name == "undeleted" else []
    if detail.get("is_public") is False:  # no public comment at all: a ticket the team keeps among itself
        return IntakeResult(restored_ids=restored) if restored else IntakeResult(
            ignored=f"ticket {ticket_id} has no public comment")
    draft = _ticket_draft(options, detail)
    if draft is None:  # nothing to store, though an undeletion still restores what was stored before
        return IntakeResult(restored_ids=restored) if restored else IntakeResult(
            ignored=f"ticket {ticket_id} has no subject or description")
    draft.partial = name in METADATA_EVENTS  # then it creates the ticket when new, else changes only metadata
    return IntakeResult(items=[draft], restored_ids=restored)


def _comment(options: Mapping[str, Any], detail: dict[str, Any], comment: dict[str, Any],
             occurred: datetime | None) -> IntakeResult:
    comment_id = text_id(comment.get("id"))
    if not comment_id:
        raise WebhookRejected(400, "a Zendesk comment_added event needs 'event.comment.id'")
    if comment.get("is_public") is not True:  # an internal note is the team talking to itself
        return IntakeResult(ignored=f"comment {comment_id} is an internal note")
    text = str(comment.get("body") or "").strip()
    if not text:
        return IntakeResult(ignored=f"comment {comment_id} has no text")
    if text == str(detail.get("description") or "").strip():
        # A ticket's description is its first comment: both are the ticket item, whichever comes first.
        draft = _ticket_draft(options, detail)
        return IntakeResult(items=[draft] if draft is not None else [])
    author = as_object(comment.get("author"))
    staff = author.get("is_staff") is True
    if staff and not truthy(options.get("include_agent_comments", False)):
        return IntakeResult(ignored=f"comment {comment_id} is by an agent")
    ticket_id = text_id(detail["id"])
    metadata = {"thread": f"ticket-{ticket_id}", "opens_thread": False, "staff": staff,
                "ticket_id": metadata_number(ticket_id),
                "organization": metadata_number(detail.get("organization_id"))}
    draft = ItemDraft(text=text, external_id=f"comment-{comment_id}", author=text_id(author.get("id")) or None,
                      url=_ticket_url(options, ticket_id), created_at=occurred, metadata=metadata,
                      editable_metadata=COMMENT_EDITABLE)
    return IntakeResult(items=[draft])


def _ticket_draft(options: Mapping[str, Any], detail: dict[str, Any]) -> ItemDraft | None:
    """The ticket as an item: subject and description, by the requester, with what triage needs."""
    subject = str(detail.get("subject") or "").strip()
    description = str(detail.get("description") or "").strip()
    # A ticket made from a chat or a call may repeat its subject as its description: said once.
    both = subject and description and subject != description
    text = f"{subject}\n\n{description}" if both else subject or description
    if not text:
        return None
    ticket_id = text_id(detail["id"])
    metadata = {
        "thread": f"ticket-{ticket_id}", "opens_thread": True, "staff": False, "ticket_id": metadata_number(ticket_id),
        "status": _lower(detail.get("status")), "priority": _lower(detail.get("priority")),
        "ticket_type": _lower(detail.get("type")), "tags": _tags(detail),
        "organization": metadata_number(detail.get("organization_id")),
        "via": _lower(as_object(detail.get("via")).get("channel")),
    }
    return ItemDraft(text=text, external_id=f"ticket-{ticket_id}", author=text_id(detail.get("requester_id")) or None,
                     url=_ticket_url(options, ticket_id), created_at=parse_timestamp(detail.get("created_at")),
                     updated_at=parse_timestamp(detail.get("updated_at")), metadata=metadata,
                     editable_metadata=TICKET_EDITABLE)


def _ticket_url(options: Mapping[str, Any], ticket_id: str) -> str | None:
    # Links point at the instance the admin configured: nothing in a delivery names a host.
    base = str(options.get("zendesk_url") or "").rstrip("/")
    return f"{base}/agent/tickets/{ticket_id}" if base else None





def _lower(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and value else None


def _tags(detail: dict[str, Any]) -> list[str]:
    tags = detail.get("tags")
    return [str(tag) for tag in tags if isinstance(tag, str | int)] if isinstance(tags, list) else []


@hookimpl
def register_channel_types(register: Callable[[ChannelType], None]) -> None:
    register(ChannelType(name="zendesk", description="Zendesk ticket events webhook (tickets and public comments)",
                         handle_webhook=handle_webhook, options=OPTIONS))
