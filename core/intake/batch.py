"""Many webhook deliveries in one transaction (group commit), with the common case done in bulk.

A delivery whose items are all new (no stored item, sighting, tombstone or same-author twin, and
nothing else in the batch touching the same ids) is inserted with one multi-row INSERT; everything
else (edits, repeats, deletions, near-duplicates) goes through ``store_delivery`` one by one, in
arrival order, after the bulk insert. The caller commits once and only then answers every sender.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, union_all
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.intake.channels import WebhookOutcome, store_delivery
from core.intake.ingest import IngestReport, draft_row
from core.intake.pseudonyms import Pseudonyms
from core.loop import FeedbackLoop
from core.models import FeedbackItem, ItemSighting, ItemTombstone, WebhookDelivery
from core.types import IntakeResult

Key = tuple[str, str]
# Bound parameters per IN query; SQLite allows 32,766, PostgreSQL 65,535.
CHUNK = 400


def _by_channel(keys: Iterable[Key]) -> Iterator[tuple[str, list[str]]]:
    """Keys grouped per channel, in chunks: ``channel = ? AND id IN (...)`` uses the unique index,
    where a row-value ``(channel, id) IN (...)`` makes SQLite scan the whole table."""
    grouped: dict[str, set[str]] = defaultdict(set)
    for channel, external_id in keys:
        grouped[channel].add(external_id)
    for channel, ids in grouped.items():
        ordered = sorted(ids)
        for start in range(0, len(ordered), CHUNK):
            yield channel, ordered[start:start + CHUNK]


@cache
def _taken_query() -> Any:
    """Built once, with expanding parameters, so that SQLAlchemy compiles it once too."""
    return union_all(*(select(model.external_id).where(model.channel == bindparam("channel"),
                                                        model.external_id.in_(bindparam("ids", expanding=True)))
                       for model in (FeedbackItem, ItemSighting, ItemTombstone)))


@cache
def _delivered_query() -> Any:
    return select(WebhookDelivery.delivery_id).where(WebhookDelivery.channel == bindparam("channel"),
                                                     WebhookDelivery.delivery_id.in_(bindparam("ids", expanding=True)))


@cache
def _hashes_query() -> Any:
    return select(FeedbackItem.content_hash).where(FeedbackItem.content_hash.in_(bindparam("ids", expanding=True)))


def _pairs_taken(session: Session, keys: Iterable[Key]) -> set[Key]:
    """Which (channel, external id) pairs already have an item, a sighting or a tombstone: one query each."""
    found: set[Key] = set()
    for channel, ids in _by_channel(keys):
        found.update((channel, external_id) for external_id in
                     session.scalars(_taken_query(), {"channel": channel, "ids": ids}))
    return found


def _delivered(session: Session, keys: Iterable[Key]) -> set[Key]:
    found: set[Key] = set()
    for channel, ids in _by_channel(keys):
        found.update((channel, delivery_id) for delivery_id in
                     session.scalars(_delivered_query(), {"channel": channel, "ids": ids}))
    return found


def _hashes_present(session: Session, digests: Iterable[str]) -> set[str]:
    wanted, found = sorted(set(digests)), set[str]()
    for start in range(0, len(wanted), CHUNK):
        found.update(session.scalars(_hashes_query(), {"ids": wanted[start:start + CHUNK]}))
    return {digest for digest in found if digest}


@dataclass
class _Claims:
    """Per-call state: each item's key, author and digest, and what is already taken in the database
    or by an earlier delivery in this batch (updated as deliveries claim their keys)."""

    item_keys: dict[tuple[int, int], Key]
    authors: dict[tuple[int, int], str | None]
    digests: dict[tuple[int, int], str | None]
    taken: set[Key]
    taken_digests: set[str]
    delivered: set[Key]

    def claim(self, index: int, channel: str, result: IntakeResult) -> list[tuple[int, int]] | None:
        """Mark the delivery's keys and digests taken; its items' spots if it can go in the bulk insert
        (all new, none partial, no deletions or restorations), else None."""
        spots = [(index, position) for position in range(len(result.items))]
        keys = [self.item_keys[spot] for spot in spots]
        own = [digest for spot in spots if (digest := self.digests[spot])]
        simple = (not result.deleted_ids and not result.restored_ids and result.items
                  and not any(draft.partial for draft in result.items)
                  and not self.taken.intersection(keys) and len(set(keys)) == len(keys)
                  and not self.taken_digests.intersection(own) and len(set(own)) == len(own))
        self.taken.update(keys)
        self.taken.update((channel, external_id) for external_id in (*result.deleted_ids, *result.restored_ids))
        self.taken_digests.update(own)
        return spots if simple else None


def _look_up(session: Session, deliveries: Sequence[tuple[str, IntakeResult]], pseudonyms: Pseudonyms) -> _Claims:
    """Every item's key, author and digest, then one round of look-ups for the whole batch."""
    authors: dict[tuple[int, int], str | None] = {}
    item_keys: dict[tuple[int, int], Key] = {}
    for index, (channel, result) in enumerate(deliveries):
        for position, draft in enumerate(result.items):
            author = authors[index, position] = pseudonyms.author(draft.author)
            item_keys[index, position] = (channel, draft.external_id or pseudonyms.content_id(author, draft.text))
    digests = {spot: pseudonyms.content_hash(authors[spot], deliveries[spot[0]][1].items[spot[1]].text)
               for spot in item_keys}
    all_keys = set(item_keys.values()) | {(channel, external_id) for channel, result in deliveries
                                          for external_id in (*result.deleted_ids, *result.restored_ids)}
    taken = _pairs_taken(session, all_keys)
    taken_digests = _hashes_present(session, (d for d in digests.values() if d))
    delivered = _delivered(session, ((channel, result.delivery_id[:256]) for channel, result in deliveries
                                     if result.delivery_id))
    return _Claims(item_keys=item_keys, authors=authors, digests=digests, taken=taken, taken_digests=taken_digests,
                   delivered=delivered)


def _sort_deliveries(loop: FeedbackLoop, deliveries: Sequence[tuple[str, IntakeResult]], claims: _Claims,
                     outcomes: list[WebhookOutcome | None],
                     rows: list[dict[str, object]]) -> tuple[list[int], list[int]]:
    """(fast, slow) delivery indexes; redeliveries get their outcome at once, fast items their row."""
    item_keys, authors, digests = claims.item_keys, claims.authors, claims.digests
    fast: list[int] = []
    slow: list[int] = []
    for index, (channel, result) in enumerate(deliveries):
        delivery_key = (channel, result.delivery_id[:256]) if result.delivery_id else None
        if delivery_key is not None and delivery_key in claims.delivered:
            outcomes[index] = WebhookOutcome(ignored=None, report=IngestReport(duplicates=len(result.items)),
                                             redelivery=True)
            continue
        if delivery_key is not None:
            claims.delivered.add(delivery_key)
        spots = claims.claim(index, channel, result)
        if spots is None:
            slow.append(index)
            continue
        fast.append(index)
        for spot, draft in zip(spots, result.items, strict=True):
            # As in ingest: enrichment, then redaction of url and metadata (what enrichment added included).
            loop.pm.hook.enrich_item(item=draft, settings=loop.settings)
            loop.pm.hook.redact_item(item=draft, settings=loop.settings)
            rows.append(draft_row(draft, channel, item_keys[spot][1], authors[spot], digests[spot]))
    return fast, slow


def _insert_fast(session: Session, deliveries: Sequence[tuple[str, IntakeResult]], rows: list[dict[str, object]],
                 fast: list[int]) -> None:
    # Core executemany, not the ORM's bulk insert: nothing here needs identity-map bookkeeping.
    connection = session.connection()
    if rows:
        connection.execute(insert(cast(Table, FeedbackItem.__table__)), rows)
    delivery_rows = [{"channel": deliveries[i][0], "delivery_id": delivery_id[:256], "received_at": utcnow()}
                     for i in fast if (delivery_id := deliveries[i][1].delivery_id)]
    if delivery_rows:
        connection.execute(insert(cast(Table, WebhookDelivery.__table__)), delivery_rows)


def store_batch(loop: FeedbackLoop, session: Session,
                deliveries: Sequence[tuple[str, IntakeResult]]) -> list[WebhookOutcome]:
    """Store every delivery in the caller's transaction; the outcomes are in the deliveries' order."""
    claims = _look_up(session, deliveries, loop.pseudonyms)
    outcomes: list[WebhookOutcome | None] = [None] * len(deliveries)
    rows: list[dict[str, object]] = []
    fast, slow = _sort_deliveries(loop, deliveries, claims, outcomes, rows)
    _insert_fast(session, deliveries, rows, fast)
    for index in fast:
        outcomes[index] = WebhookOutcome(ignored=None, report=IngestReport(created=len(deliveries[index][1].items)))
    for index in slow:  # after the bulk insert, in arrival order: an edit finds the item created before it
        channel, result = deliveries[index]
        outcomes[index] = store_delivery(loop, session, channel, result)
    session.flush()
    if fast:  # the slow ones went through ingest, which kicks for itself
        loop.kicks.after_commit(session, "embedding")
    return [outcome for outcome in outcomes if outcome is not None]
