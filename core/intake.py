"""Ingest: validate, enrich through the plugins, pseudonymise authors, and store without duplicates."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.loop import FeedbackLoop
from core.models import FeedbackItem, Setting, utcnow
from core.types import ItemDraft

MAX_TEXT_CHARS = 20_000
PSEUDONYM_KEY = "pseudonym_key"


class InvalidItem(ValueError):
    """An item that cannot be stored; the message says which one and why."""


@dataclass
class IngestReport:
    created: int = 0
    updated: int = 0
    duplicates: int = 0
    item_ids: list[int] = field(default_factory=list)


def pseudonym_key(session: Session) -> bytes:
    """This installation's secret for author pseudonyms, created once and kept in the database."""
    row = session.get(Setting, PSEUDONYM_KEY)
    if row is None:
        row = Setting(key=PSEUDONYM_KEY, value=secrets.token_hex(32))
        session.add(row)
        session.flush()
    return bytes.fromhex(row.value)


def pseudonymise(key: bytes, author: str | None) -> str | None:
    if author is None or not author.strip():
        return None
    return hmac.new(key, author.strip().lower().encode(), hashlib.sha256).hexdigest()[:32]


def content_id(draft: ItemDraft) -> str:
    """An id for items that arrive without one: the same author posting the same text is one item."""
    basis = f"{(draft.author or '').strip().lower()}\n{' '.join(draft.text.split()).lower()}"
    return "sha1:" + hashlib.sha1(basis.encode()).hexdigest()


def validate(drafts: Sequence[ItemDraft]) -> None:
    for index, draft in enumerate(drafts):
        if not isinstance(draft.text, str) or not draft.text.strip():
            raise InvalidItem(f"item {index}: text must be a non-empty string")
        if len(draft.text) > MAX_TEXT_CHARS:
            raise InvalidItem(f"item {index}: text is {len(draft.text)} characters; the limit is {MAX_TEXT_CHARS}")


def ingest(loop: FeedbackLoop, session: Session, drafts: Sequence[ItemDraft]) -> IngestReport:
    """Store new items and apply edits; the caller's transaction decides when it becomes durable."""
    validate(drafts)
    report = IngestReport()
    key = pseudonym_key(session)
    for draft in drafts:
        external_id = draft.external_id or content_id(draft)
        existing = session.scalar(
            select(FeedbackItem).where(FeedbackItem.channel == draft.channel,
                                       FeedbackItem.external_id == external_id)
        )
        if existing is not None and existing.text_original == draft.text:
            report.duplicates += 1
            report.item_ids.append(existing.id)
            continue
        loop.pm.hook.enrich_item(item=draft, settings=loop.settings)
        if existing is not None:  # an edit: new text, new enrichment, and the embedding is stale
            existing.text_original = draft.text
            existing.text_redacted = draft.redacted_text or draft.text
            existing.sentiment = draft.sentiment
            existing.kind = draft.kind
            existing.embedding = None
            existing.updated_at = utcnow()
            report.updated += 1
            report.item_ids.append(existing.id)
            continue
        item = FeedbackItem(
            channel=draft.channel,
            external_id=external_id,
            author_pseudonym=pseudonymise(key, draft.author),
            text_original=draft.text,
            text_redacted=draft.redacted_text if draft.redacted_text is not None else draft.text,
            url=draft.url,
            created_at=draft.created_at or utcnow(),
            metadata_json=dict(draft.metadata),
            kind=draft.kind,
            sentiment=draft.sentiment,
        )
        session.add(item)
        session.flush()
        report.created += 1
        report.item_ids.append(item.id)
    return report
