"""Ingest: validate, enrich through the plugins, pseudonymise authors, and store without duplicates.

One item per thing a customer said: a re-sent item (same channel and external id) adds nothing, an
edit replaces the text and sends the item back to be embedded and themed, the same words from the same
author in another place become a sighting (a link) of the first item, and an item deleted at its
source leaves only a tombstone so that late deliveries do not bring it back.

What an update may change: the text (an edit), metadata keys the item does not have yet, and the keys
its draft declares editable (``ItemDraft.editable_metadata``, which only channel plugins set: a closed
issue's state, new tags). Everything else that names where an item lives (ids, the forum instance,
thread references, the url) is kept as first stored, whoever re-sends the item. An edit older than the
stored version (``ItemDraft.updated_at`` against ``source_updated_at``) is ignored: a replayed or late
delivery never brings back an old text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from core.clock import aware, utcnow
from core.errors import InvalidInput
from core.intake.pseudonyms import normalised
from core.loop import FeedbackLoop
from core.models import FeedbackItem, ItemSighting, ItemTombstone, Theme, ThemeMembership
from core.types import ItemDraft, MembershipSource

MAX_TEXT_CHARS = 20_000
# Values per IN (...) list of the bulk queries: far below SQLite's 32,766 bound parameters.
IN_CHUNK = 400
_T = TypeVar("_T")


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
    pseudonyms = loop.pseudonyms
    enriched = _enrich_ahead(loop, session, drafts)
    for draft in drafts:
        # url and metadata are redacted before any use: a re-sent item's metadata merges in unenriched.
        # Drafts enriched ahead were redacted there, after their enrichment: once per draft is enough.
        if id(draft) not in enriched:
            loop.pm.hook.redact_item(item=draft, settings=loop.settings)
        author = pseudonyms.author(draft.author)
        external_id = draft.external_id or pseudonyms.content_id(author, draft.text)
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
            _apply_update(loop, session, existing, draft, report, enriched)
            continue
        digest = pseudonyms.content_hash(author, draft.text)
        twin = session.scalar(select(FeedbackItem).where(FeedbackItem.content_hash == digest)
                              .order_by(FeedbackItem.id).limit(1)) if digest else None
        if twin is not None:
            session.add(ItemSighting(item_id=twin.id, channel=draft.channel, external_id=external_id,
                                     url=draft.url, author_pseudonym=author))
            session.flush()
            report.linked += 1
            report.item_ids.append(twin.id)
            continue
        _enrich(loop, draft, enriched)
        item = FeedbackItem(**draft_row(draft, draft.channel, external_id, author, digest))
        session.add(item)
        session.flush()
        report.created += 1
        report.item_ids.append(item.id)
    if report.created or report.updated:
        loop.kicks.after_commit(session, "embedding")
    return report


def _enrich_ahead(loop: FeedbackLoop, session: Session, drafts: Sequence[ItemDraft]) -> set[int]:
    """Enrich, before anything is written, the drafts that will be stored (new, or a changed text); returns
    their ``id()``s. Enrichment is the slow part (redaction reads every character), and on SQLite the
    write lock is held from the first write to the commit: done later, every other writer (the webhooks'
    group commit) would wait behind a big batch. A draft that turns out to be a sighting was enriched
    for nothing, which costs time but no lock."""
    pseudonyms = loop.pseudonyms
    keys = [draft.external_id or pseudonyms.content_id(pseudonyms.author(draft.author), draft.text)
            for draft in drafts]
    wanted: dict[str, set[str]] = {}
    for draft, key in zip(drafts, keys, strict=True):
        wanted.setdefault(draft.channel, set()).add(key)
    stored: dict[tuple[str, str], str] = {}
    for channel, ids in wanted.items():
        for some in _chunks(sorted(ids)):
            stored.update(((channel, external_id), text) for external_id, text in session.execute(
                select(FeedbackItem.external_id, FeedbackItem.text_original).where(
                    FeedbackItem.channel == channel, FeedbackItem.external_id.in_(some))))
    enriched: set[int] = set()
    for draft, key in zip(drafts, keys, strict=True):
        known = stored.get((draft.channel, key))
        if known is not None and (draft.partial or known == draft.text):
            continue  # a repeat: nothing of it is stored again
        _enrich(loop, draft, enriched)
    return enriched


def _enrich(loop: FeedbackLoop, draft: ItemDraft, enriched: set[int]) -> None:
    """The enrichment hooks, then redaction of url and metadata, once per draft.

    Redaction comes after enrichment so that metadata an enrichment plugin added is redacted too.
    """
    if id(draft) not in enriched:
        loop.pm.hook.enrich_item(item=draft, settings=loop.settings)
        loop.pm.hook.redact_item(item=draft, settings=loop.settings)
        enriched.add(id(draft))


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
        "created_at": aware(draft.created_at) or now, "received_at": now, "updated_at": now,
        "source_updated_at": aware(draft.updated_at),
        "metadata_json": dict(draft.metadata), "kind": draft.kind, "sentiment": draft.sentiment,
        "content_hash": digest, "customer_tier": draft.customer_tier, "account_value": draft.account_value,
        "request_id": draft.request_id[:64] if draft.request_id else None,  # the column's width, whoever set it
    }


def sighting_text(session: Session, sighting: ItemSighting) -> str:
    item = session.get(FeedbackItem, sighting.item_id)
    return item.text_original if item is not None else ""


def is_stale(existing: FeedbackItem, draft: ItemDraft) -> bool:
    """The draft is an older version than the one stored (both stamped by the source's clock)."""
    stored, edited = aware(existing.source_updated_at), aware(draft.updated_at)
    return stored is not None and edited is not None and edited < stored


def updated_metadata(stored: dict[str, Any], draft: ItemDraft) -> dict[str, Any]:
    """The stored metadata with the draft's new keys and its editable keys; nothing else changes."""
    merged = dict(stored)
    for key, value in draft.metadata.items():
        if key not in stored or key in draft.editable_metadata:
            merged[key] = value
    return merged


def _apply_attributes(existing: FeedbackItem, draft: ItemDraft) -> None:
    """Metadata, url, impact and version of a re-sent item; only what differs is assigned (a re-send of
    the same item writes nothing)."""
    stored = existing.metadata_json or {}
    merged = updated_metadata(stored, draft)
    if merged != stored:
        existing.metadata_json = merged
    if draft.url and existing.url is None and not draft.partial:  # a url names a host: set once, never moved
        existing.url = draft.url
    if draft.customer_tier is not None and draft.customer_tier != existing.customer_tier:
        existing.customer_tier = draft.customer_tier
    if draft.account_value is not None and draft.account_value != existing.account_value:
        existing.account_value = draft.account_value
    edited = aware(draft.updated_at)
    if edited is not None and edited != aware(existing.source_updated_at):
        existing.source_updated_at = edited


def _apply_update(loop: FeedbackLoop, session: Session, existing: FeedbackItem, draft: ItemDraft,
                  report: IngestReport, enriched: set[int]) -> None:
    """A re-sent item: ignored when older than the stored version, else its attributes, then a changed
    text is an edit."""
    report.item_ids.append(existing.id)
    if is_stale(existing, draft):
        report.duplicates += 1
        return
    _apply_attributes(existing, draft)
    if draft.partial or existing.text_original == draft.text:
        report.duplicates += 1
        return
    _enrich(loop, draft, enriched)
    existing.text_original = draft.text
    existing.text_redacted = shown_text(draft)
    existing.sentiment = draft.sentiment
    existing.kind = draft.kind
    existing.content_hash = loop.pseudonyms.content_hash(existing.author_pseudonym, draft.text)
    # The old embedding and the theme the machine chose describe the old text: drop both, so the
    # item is embedded again and the next clustering run puts it where the new text belongs.
    existing.embedding = None
    existing.embedding_model = None
    existing.updated_at = utcnow()
    if draft.request_id is not None:  # the edit's request is the one the worker's next lines follow
        existing.request_id = draft.request_id[:64]
    session.execute(delete(ThemeMembership).where(ThemeMembership.item_id == existing.id,
                                                  ThemeMembership.source == MembershipSource.MACHINE))
    report.updated += 1


def restore_items(session: Session, channel: str, external_ids: Iterable[str]) -> None:
    """Lift the tombstones of items restored at their source, so their next delivery is stored again."""
    for ids in _chunks(list(dict.fromkeys(external_ids))):
        session.execute(delete(ItemTombstone).where(ItemTombstone.channel == channel,
                                                    ItemTombstone.external_id.in_(ids)))


def _chunks(values: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), IN_CHUNK):
        yield values[start:start + IN_CHUNK]


def _move_to_successors(session: Session, item_ids: list[int]) -> set[int]:
    """Items whose words were also seen elsewhere take their first sighting's place; returns their ids."""
    successors: dict[int, ItemSighting] = {}
    for ids in _chunks(item_ids):
        for sighting in session.scalars(select(ItemSighting).where(ItemSighting.item_id.in_(ids))
                                        .order_by(ItemSighting.id)):
            successors.setdefault(sighting.item_id, sighting)
    for ids in _chunks(sorted(successors)):
        for item in session.scalars(select(FeedbackItem).where(FeedbackItem.id.in_(ids))):
            successor = successors[item.id]
            item.channel, item.external_id, item.url = successor.channel, successor.external_id, successor.url
            session.delete(successor)
    session.flush()
    return set(successors)


def _tombstone(session: Session, channel: str, external_ids: list[str]) -> None:
    present: set[str] = set()
    for ids in _chunks(external_ids):
        present.update(session.scalars(select(ItemTombstone.external_id).where(
            ItemTombstone.channel == channel, ItemTombstone.external_id.in_(ids))))
    missing = [{"channel": channel, "external_id": external_id} for external_id in external_ids
               if external_id not in present]
    if missing:
        session.execute(insert(ItemTombstone), missing)


def delete_items(session: Session, channel: str, external_ids: Iterable[str]) -> int:
    """Remove items deleted at their source (memberships go with them) and leave tombstones.

    When the same text was also seen elsewhere, that sighting takes the item's place instead: the
    words still stand in the other channel, so the item and its theme count stay. Set-based: a few
    queries per 400 ids and one scrub of the themes' quotes, however many ids a delivery deletes.
    """
    wanted = list(dict.fromkeys(external_ids))
    items: list[tuple[int, str]] = []
    sighting_ids: list[int] = []
    for ids in _chunks(wanted):
        items.extend((item_id, text) for item_id, text in session.execute(
            select(FeedbackItem.id, FeedbackItem.text_redacted).where(
                FeedbackItem.channel == channel, FeedbackItem.external_id.in_(ids))))
        sighting_ids.extend(session.scalars(select(ItemSighting.id).where(
            ItemSighting.channel == channel, ItemSighting.external_id.in_(ids))))
    # Sightings among the deleted ids go first: an item never moves to a place that is itself deleted.
    for some in _chunks(sighting_ids):
        session.execute(delete(ItemSighting).where(ItemSighting.id.in_(some)))
    moved = _move_to_successors(session, [item_id for item_id, _ in items])
    doomed = [(item_id, text) for item_id, text in items if item_id not in moved]
    scrub_quotes(session, {text for _, text in doomed})
    for some in _chunks([item_id for item_id, _ in doomed]):
        session.execute(delete(FeedbackItem).where(FeedbackItem.id.in_(some)))
    _tombstone(session, channel, wanted)
    session.flush()
    return len(items) + len(sighting_ids)


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
