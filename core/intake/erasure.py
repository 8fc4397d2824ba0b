"""Erasure on request: ``feedbackloop forget --author X`` removes everything stored about an author.

Items are found by the author's keyed pseudonym (the name itself is never stored). Their embeddings
live on the item rows and their theme memberships and sightings cascade with them; quotes copied onto
themes are scrubbed too. Each erased source id gets a tombstone so a late webhook redelivery does not
store the words again, and the audit log records that the erasure happened (with counts, not content).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.community.models_champions import forget_invitations
from core.errors import FeedbackloopError
from core.intake.ingest import is_tombstoned, scrub_quotes
from core.intake.pseudonyms import Pseudonyms
from core.models import AuditEntry, FeedbackItem, ItemSighting, ItemTombstone


class ForgetError(FeedbackloopError):
    """A request that cannot be carried out (e.g. an empty author)."""


@dataclass(frozen=True)
class ForgetReport:
    pseudonym: str
    items: int
    sightings: int
    themes_scrubbed: int


def forget_author(session: Session, author: str, actor: str = "cli", *,
                  pseudonyms: Pseudonyms) -> ForgetReport:
    pseudonym = pseudonyms.author(author)
    if pseudonym is None:
        raise ForgetError("--author must name an author (it is matched case-insensitively)")
    rows = session.execute(
        select(FeedbackItem.id, FeedbackItem.channel, FeedbackItem.external_id, FeedbackItem.text_redacted)
        .where(FeedbackItem.author_pseudonym == pseudonym)
    ).all()
    sightings = session.execute(
        select(ItemSighting.id, ItemSighting.channel, ItemSighting.external_id)
        .where(ItemSighting.author_pseudonym == pseudonym)
    ).all()
    scrubbed = scrub_quotes(session, {row.text_redacted for row in rows})
    for channel, external_id in {(r.channel, r.external_id) for r in rows} | {(s.channel, s.external_id)
                                                                               for s in sightings}:
        if not is_tombstoned(session, channel, external_id):
            session.add(ItemTombstone(channel=channel, external_id=external_id))
    # Bulk deletes: the database cascades memberships and sightings of the erased items.
    session.execute(delete(ItemSighting).where(ItemSighting.author_pseudonym == pseudonym))
    session.execute(delete(FeedbackItem).where(FeedbackItem.author_pseudonym == pseudonym))
    forget_invitations(session, {pseudonym})  # co-creation invitations keep no trace of whom they went to
    session.add(AuditEntry(actor=actor, action="forget_author", entity_type="author", entity_id=pseudonym,
                           details={"items": len(rows), "sightings": len(sightings), "themes_scrubbed": scrubbed}))
    session.flush()
    return ForgetReport(pseudonym=pseudonym, items=len(rows), sightings=len(sightings), themes_scrubbed=scrubbed)
