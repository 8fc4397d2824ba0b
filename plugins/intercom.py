"""Built-in intake channel type ``intercom``: an Intercom app's webhook (conversations and their replies).

In the Developer Hub, open the app's Webhooks page, set the endpoint URL to ``/webhooks/NAME`` and pick
the topics ``conversation.user.created``, ``conversation.user.replied``, ``conversation_part.redacted`` and
``conversation.deleted`` (optionally ``conversation.admin.replied`` and the close/open/snooze topics); the
app's client secret (Basic Info page) goes in the channel's ``--secret-env`` variable. Intercom signs the
raw body: ``X-Hub-Signature: sha1=<hex HMAC-SHA1(client secret, body)>``. It signs no time, so a captured
notification stays valid; its ``id`` (in the signed body) makes a replay a recognised redelivery.

A conversation's opening message is one item (``conversation-<id>``, by its contact); each reply by a user
or lead is one more (``part-<id>``) in the conversation's thread. Admin replies are "staff" and stored only
with ``include_admin_replies``; notes and bot or AI-agent parts never. Part bodies are HTML: the text is
what a reader sees, without quoted text and code blocks. Redacted parts are deleted, deleted conversations
too; close, open and snooze notifications update the conversation's state. The conversation's company
(``company``, or the first of ``companies``) gives the metadata ``company`` (name), ``company_id``,
``company_plan`` and ``company_monthly_spend``, for ``tier_field`` / ``value_field`` / ``impact_key``;
names and e-mails of people are never kept.

Options: ``include_admin_replies`` (default false), ``link_template`` (a conversation link such as
``https://app.intercom.com/a/inbox/{app_id}/inbox/conversation/{conversation_id}``), ``allow_unsigned``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from core import hookimpl
from core.types import ChannelType, IntakeResult, ItemDraft, WebhookRejected, WebhookRequest
from plugins.discourse import text_from_cooked
from plugins.webhook_signing import UNSIGNED_OPTION, as_object, metadata_number, parse_json, text_id, truthy

OPTIONS = {
    **UNSIGNED_OPTION,
    "include_admin_replies": "true: store admins' replies too, as staff (default false)",
    "link_template": "a link to a conversation, with {app_id} and {conversation_id} filled in from the body",
}
SIGNATURE_HEADER = "X-Hub-Signature"
CONTACT_AUTHORS = {"user", "lead", "contact"}
ADMIN_AUTHORS = {"admin", "team"}
# Parts that are someone speaking in the conversation; notes, assignments and attribute changes are not.
SPOKEN_PARTS = {"comment", "open", "close"}
STATE_TOPICS = {"conversation.admin.closed", "conversation.admin.opened", "conversation.admin.snoozed",
                "conversation.admin.unsnoozed", "conversation_part.tag.created"}
REPLY_TOPICS = {"conversation.user.replied", "conversation.admin.replied"}
COMPANY_KEYS = ("company", "company_id", "company_plan", "company_monthly_spend")
CONVERSATION_EDITABLE = frozenset({"state", "priority", "tags", *COMPANY_KEYS})
PART_EDITABLE = frozenset(COMPANY_KEYS)


def intercom_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value Intercom sends for this body."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def verify(request: WebhookRequest) -> None:
    """Refuse (401) a notification whose ``sha1=`` signature is missing or does not match the client secret."""
    if not request.secret:
        if truthy(request.options.get("allow_unsigned", False)):
            return
        raise WebhookRejected(401, "this channel has no secret configured; refusing unsigned deliveries")
    given = request.headers.get(SIGNATURE_HEADER.lower(), "").strip()
    if not given:
        raise WebhookRejected(401, f"missing {SIGNATURE_HEADER} header")
    # Constant-time comparison: timing must not reveal how much of a forged signature was right.
    if not hmac.compare_digest(given.encode(), intercom_signature(request.secret, request.body).encode()):
        raise WebhookRejected(401, f"wrong {SIGNATURE_HEADER}: the body was not signed with this app's client secret")


def handle_webhook(request: WebhookRequest) -> IntakeResult:
    verify(request)
    notification = parse_json(request.body)
    if not isinstance(notification, dict) or notification.get("type") != "notification_event":
        raise WebhookRejected(400, "an Intercom webhook body is a JSON object with \"type\": \"notification_event\"")
    topic = notification.get("topic")
    if not isinstance(topic, str) or not topic:
        raise WebhookRejected(400, "the Intercom notification has no 'topic'")
    if topic not in {"conversation.user.created", "conversation.deleted", "conversation_part.redacted",
                     *REPLY_TOPICS, *STATE_TOPICS}:
        return IntakeResult(ignored=f"Intercom topic {topic!r} is not feedback")
    item = as_object(as_object(notification.get("data")).get("item"))
    if not text_id(item.get("id")):
        raise WebhookRejected(400, f"an Intercom {topic} notification needs 'data.item' with an 'id'")
    result = _dispatch(request.options, topic, item, text_id(notification.get("app_id")))
    # The notification id is in the signed body and repeats on every retry (which changes delivery_attempts).
    result.delivery_id = text_id(notification.get("id")) or None
    return result


def _dispatch(options: Mapping[str, Any], topic: str, item: dict[str, Any], app_id: str) -> IntakeResult:
    conversation_id = text_id(item["id"])
    if topic == "conversation.deleted":
        return IntakeResult(deleted_ids=[f"conversation-{conversation_id}"])
    if topic == "conversation_part.redacted":
        redacted = [f"part-{text_id(part.get('id'))}" for part in _parts(item)
                    if part.get("redacted") is True and text_id(part.get("id"))]
        if as_object(item.get("source")).get("redacted") is True:  # the opening message itself
            redacted.append(f"conversation-{conversation_id}")
        if not redacted:
            return IntakeResult(ignored=f"no redacted part in conversation {conversation_id}")
        return IntakeResult(deleted_ids=redacted)
    context = _Context(options, item, app_id)
    if topic == "conversation.user.created" or topic in STATE_TOPICS:
        draft = context.opener()
        if draft is None:
            return IntakeResult(ignored=f"conversation {conversation_id} was not started by a contact, or has no text")
        draft.partial = topic in STATE_TOPICS  # a state change creates a missing item, else changes metadata
        return IntakeResult(items=[draft])
    drafts = [draft for part in _parts(item) if (draft := context.reply(part)) is not None]
    if not drafts:
        return IntakeResult(ignored=f"no reply in conversation {conversation_id} is feedback")
    return IntakeResult(items=drafts)


class _Context:
    """One conversation's notification: what its items share (thread, company, link)."""

    def __init__(self, options: Mapping[str, Any], item: dict[str, Any], app_id: str) -> None:
        self.options = options
        self.item = item
        self.conversation_id = text_id(item["id"])
        self.company = _company(item)
        template = str(options.get("link_template") or "")
        # The link's host is the admin's template; only ids from the signed body fill it in.
        self.url = (template.replace("{app_id}", app_id).replace("{conversation_id}", self.conversation_id)
                    if template else None)

    def _metadata(self, opens: bool, staff: bool) -> dict[str, Any]:
        return {"thread": f"conversation-{self.conversation_id}", "opens_thread": opens, "staff": staff,
                "conversation_id": metadata_number(self.conversation_id), **self.company}

    def opener(self) -> ItemDraft | None:
        source = as_object(self.item.get("source"))
        author = as_object(source.get("author"))
        if author.get("type") not in CONTACT_AUTHORS or source.get("redacted") is True:
            return None
        subject, body = _text(source.get("subject")), _text(source.get("body"))
        text = f"{subject}\n\n{body}" if subject and body else subject or body
        if not text:
            return None
        metadata = self._metadata(opens=True, staff=False)
        tags = as_object(self.item.get("tags")).get("tags")
        metadata.update(state=self.item.get("state"), priority=self.item.get("priority"),
                        source_type=source.get("type"),
                        tags=[str(tag.get("name")) for tag in tags or [] if isinstance(tag, dict)])
        return ItemDraft(text=text, external_id=f"conversation-{self.conversation_id}",
                         author=text_id(author.get("id")) or None, url=self.url,
                         created_at=_unix(self.item.get("created_at")), metadata=metadata,
                         editable_metadata=CONVERSATION_EDITABLE)

    def reply(self, part: dict[str, Any]) -> ItemDraft | None:
        """A part as an item, or None when it is not feedback (a note, a bot, an admin unless included)."""
        author = as_object(part.get("author"))
        part_id = text_id(part.get("id"))
        if not part_id or part.get("part_type") not in SPOKEN_PARTS or part.get("redacted") is True:
            return None
        if author.get("from_ai_agent") is True or author.get("is_ai_answer") is True:
            return None
        staff = author.get("type") in ADMIN_AUTHORS
        if not staff and author.get("type") not in CONTACT_AUTHORS:  # bots, and parts with no author
            return None
        if staff and not truthy(self.options.get("include_admin_replies", False)):
            return None
        text = _text(part.get("body"))
        if not text:
            return None
        metadata = self._metadata(opens=False, staff=staff)
        metadata["part_type"] = part.get("part_type")
        return ItemDraft(text=text, external_id=f"part-{part_id}", author=text_id(author.get("id")) or None,
                         url=self.url, created_at=_unix(part.get("created_at")),
                         updated_at=_unix(part.get("updated_at")), metadata=metadata,
                         editable_metadata=PART_EDITABLE)


def _company(item: dict[str, Any]) -> dict[str, Any]:
    """The conversation's company as impact metadata: ``company`` (2.x API) or the first of ``companies``."""
    company = as_object(item.get("company"))
    if not company:
        companies = as_object(item.get("companies"))
        listed = companies.get("companies", companies.get("data"))
        company = as_object(listed[0]) if isinstance(listed, list) and listed else {}
    if not company:
        return {}
    return {"company": company.get("name") or None,
            "company_id": metadata_number(company.get("company_id")) or metadata_number(company.get("id")),
            "company_plan": as_object(company.get("plan")).get("name"),
            "company_monthly_spend": company.get("monthly_spend")}


def _parts(item: dict[str, Any]) -> list[dict[str, Any]]:
    listed = as_object(item.get("conversation_parts")).get("conversation_parts")
    return [part for part in listed if isinstance(part, dict)] if isinstance(listed, list) else []


def _text(html: Any) -> str:
    return text_from_cooked(html) if isinstance(html, str) and html.strip() else ""


def _unix(value: Any) -> datetime | None:
    """Intercom's times are Unix seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e11:
        return None
    return datetime.fromtimestamp(value, tz=UTC)





@hookimpl
def register_channel_types(register: Callable[[ChannelType], None]) -> None:
    register(ChannelType(name="intercom", description="Intercom conversations webhook (messages and replies)",
                         handle_webhook=handle_webhook, options=OPTIONS))
