"""Ingest: validate, enrich through the plugins, pseudonymise authors, and store without duplicates.

One item per thing a customer said: a re-sent item (same channel and external id) adds nothing, an
edit replaces the text and sends the item back to be embedded and themed, the same words from the same
author in another place become a sighting (a link) of the first item, and an item deleted at its
source leaves only a tombstone so that late deliveries do not bring it back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.errors import InvalidInput
from core.loop import FeedbackLoop
from core.models import FeedbackItem, ItemSighting, ItemTombstone, Setting, Theme, ThemeMembership
from core.types import ItemDraft, MembershipSource

MAX_TEXT_CHARS = 20_000
PSEUDONYM_KEY = "pseudonym_key"


class InvalidItem(InvalidInput):
    """An item that cannot be stored; the message says which one and why."""


@dataclass
class IngestReport:
    created: int = 0
    updated: int = 0
    duplicates: int = 0
    linked: int = 0  # same author, same text elsewhere: kept as a sighting of an existing item
    deleted: int = 0
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


def normalised(text: str) -> str:
    return " ".join(text.split()).lower()


def content_id(draft: ItemDraft) -> str:
    """An id for items that arrive without one: the same author posting the same text is one item."""
    basis = f"{(draft.author or '').strip().lower()}\n{normalised(draft.text)}"
    return "sha1:" + hashlib.sha1(basis.encode()).hexdigest()


def content_hash(author_pseudonym: str | None, text: str) -> str | None:
    """Key of near-duplicates: only with a known author (two people saying the same thing are two voices)."""
    if author_pseudonym is None:
        return None
    return hashlib.sha256(f"{author_pseudonym}\n{normalised(text)}".encode()).hexdigest()


def validate(drafts: Sequence[ItemDraft]) -> None:
    for index, draft in enumerate(drafts):
        if not isinstance(draft.text, str) or not draft.text.strip():
            raise InvalidItem(f"item {index}: text must be a non-empty string")
        if len(draft.text) > MAX_TEXT_CHARS:
            raise InvalidItem(f"item {index}: text is {len(draft.text)} characters; the limit is {MAX_TEXT_CHARS}")


def find_item(session: Session, channel: str, external_id: str) -> FeedbackItem | None:
    return session.scalar(select(FeedbackItem).where(FeedbackItem.channel == channel,
                                                     FeedbackItem.external_id == external_id))


def find_sighting(session: Session, channel: str, external_id: str) -> ItemSighting | None:
    return session.scalar(select(ItemSighting).where(ItemSighting.channel == channel,
                                                     ItemSighting.external_id == external_id))


def is_tombstoned(session: Session, channel: str, external_id: str) -> bool:
    return session.scalar(select(ItemTombstone.id).where(ItemTombstone.channel == channel,
                                                         ItemTombstone.external_id == external_id)) is not None


def ingest(loop: FeedbackLoop, session: Session, drafts: Sequence[ItemDraft]) -> IngestReport:
    """Store new items and apply edits; the caller's transaction decides when it becomes durable."""
    validate(drafts)
    report = IngestReport()
    key = pseudonym_key(session)
    for draft in drafts:
        external_id = draft.external_id or content_id(draft)
        if is_tombstoned(session, draft.channel, external_id):
            report.duplicates += 1  # deleted at the source: a late delivery must not bring it back
            continue
        existing = find_item(session, draft.channel, external_id)
        if existing is None:
            sighting = find_sighting(session, draft.channel, external_id)
            if sighting is not None:
                if normalised(sighting_text(session, sighting)) == normalised(draft.text) or draft.partial:
                    report.duplicates += 1
                    report.item_ids.append(sighting.item_id)
                    continue
                session.delete(sighting)  # edited away from its twin: from now on it is an item of its own
                session.flush()
        if existing is not None:
            _apply_update(loop, session, existing, draft, report)
            continue
        author = pseudonymise(key, draft.author)
        digest = content_hash(author, draft.text)
        twin = session.scalar(select(FeedbackItem).where(FeedbackItem.content_hash == digest)
                              .order_by(FeedbackItem.id).limit(1)) if digest else None
        if twin is not None:
            session.add(ItemSighting(item_id=twin.id, channel=draft.channel, external_id=external_id,
                                     url=draft.url, author_pseudonym=author))
            session.flush()
            report.linked += 1
            report.item_ids.append(twin.id)
            continue
        loop.pm.hook.enrich_item(item=draft, settings=loop.settings)
        item = FeedbackItem(**draft_row(draft, draft.channel, external_id, author, digest))
        session.add(item)
        session.flush()
        report.created += 1
        report.item_ids.append(item.id)
    return report


def shown_text(draft: ItemDraft) -> str:
    """What leaves the system: the redacted text when enrichment made one (even an empty one), else the text."""
    return draft.redacted_text if draft.redacted_text is not None else draft.text


def draft_row(draft: ItemDraft, channel: str, external_id: str, author_pseudonym: str | None,
              digest: str | None, now: datetime | None = None) -> dict[str, Any]:
    """The ``feedback_items`` row for an enriched draft: the one place the single and the batch paths share."""
    now = now or utcnow()
    return {
        "channel": channel, "external_id": external_id, "author_pseudonym": author_pseudonym,
        "text_original": draft.text, "text_redacted": shown_text(draft), "url": draft.url,
        "created_at": draft.created_at or now, "received_at": now, "updated_at": now,
        "metadata_json": dict(draft.metadata), "kind": draft.kind, "sentiment": draft.sentiment,
        "content_hash": digest, "customer_tier": draft.customer_tier, "account_value": draft.account_value,
    }


def sighting_text(session: Session, sighting: ItemSighting) -> str:
    item = session.get(FeedbackItem, sighting.item_id)
    return item.text_original if item is not None else ""


def _apply_update(loop: FeedbackLoop, session: Session, existing: FeedbackItem, draft: ItemDraft,
                  report: IngestReport) -> None:
    """Metadata always merges in (a closed issue, new tags); a changed text is an edit."""
    merged = {**(existing.metadata_json or {}), **draft.metadata}
    if merged != existing.metadata_json:
        existing.metadata_json = merged
    if draft.url and not draft.partial:
        existing.url = draft.url
    if draft.customer_tier is not None:
        existing.customer_tier = draft.customer_tier
    if draft.account_value is not None:
        existing.account_value = draft.account_value
    if draft.partial or existing.text_original == draft.text:
        report.duplicates += 1
        report.item_ids.append(existing.id)
        return
    loop.pm.hook.enrich_item(item=draft, settings=loop.settings)
    existing.text_original = draft.text
    existing.text_redacted = shown_text(draft)
    existing.sentiment = draft.sentiment
    existing.kind = draft.kind
    existing.content_hash = content_hash(existing.author_pseudonym, draft.text)
    # The old embedding and the theme the machine chose describe the old text: drop both, so the
    # item is embedded again and the next clustering run puts it where the new text belongs.
    existing.embedding = None
    existing.embedding_model = None
    existing.updated_at = utcnow()
    session.execute(delete(ThemeMembership).where(ThemeMembership.item_id == existing.id,
                                                  ThemeMembership.source == MembershipSource.MACHINE))
    report.updated += 1
    report.item_ids.append(existing.id)


def restore_items(session: Session, channel: str, external_ids: Iterable[str]) -> None:
    """Lift the tombstones of items restored at their source, so their next delivery is stored again."""
    for external_id in external_ids:
        session.execute(delete(ItemTombstone).where(ItemTombstone.channel == channel,
                                                    ItemTombstone.external_id == external_id))


def delete_items(session: Session, channel: str, external_ids: Iterable[str]) -> int:
    """Remove items deleted at their source (memberships go with them) and leave tombstones.

    When the same text was also seen elsewhere, that sighting takes the item's place instead: the
    words still stand in the other channel, so the item and its theme count stay.
    """
    removed = 0
    for external_id in external_ids:
        item = find_item(session, channel, external_id)
        if item is not None:
            successor = session.scalar(select(ItemSighting).where(ItemSighting.item_id == item.id)
                                       .order_by(ItemSighting.id).limit(1))
            if successor is not None:
                item.channel, item.external_id = successor.channel, successor.external_id
                item.url = successor.url
                session.delete(successor)
            else:
                scrub_quotes(session, {item.text_redacted})
                session.execute(delete(FeedbackItem).where(FeedbackItem.id == item.id))
                session.expunge(item)
            removed += 1
        else:
            sighting = find_sighting(session, channel, external_id)
            if sighting is not None:
                session.delete(sighting)
                removed += 1
        if not is_tombstoned(session, channel, external_id):
            session.add(ItemTombstone(channel=channel, external_id=external_id))
        session.flush()
    return removed


def scrub_quotes(session: Session, texts: set[str]) -> int:
    """Remove these texts from the quotes copied onto themes; returns how many themes changed.

    Quotes are copies made at clustering time: words deleted at their source or erased on request
    must not stay on the theme page until the next clustering run.
    """
    changed = 0
    if not texts:
        return changed
    for theme in session.scalars(select(Theme)):
        kept = [quote for quote in theme.quotes or [] if quote not in texts]
        if len(kept) != len(theme.quotes or []):
            theme.quotes = kept
            changed += 1
    return changed
