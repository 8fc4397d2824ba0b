from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status

from api.deps import LoopDep, RoleDep, SessionDep
from api.schemas import FeedbackBatch, FeedbackCreate, FeedbackPage, FeedbackPublic, IngestResult
from core.intake.ingest import ingest
from core.intake.queries import ItemFilter, list_items
from core.models import FeedbackItem
from core.types import ItemDraft

router = APIRouter(prefix="/api/v1", tags=["feedback"])


def public_item(item: FeedbackItem) -> FeedbackPublic:
    return FeedbackPublic(
        id=item.id, channel=item.channel, external_id=item.external_id, text=item.text_redacted,
        author=item.author_pseudonym, url=item.url, created_at=item.created_at, kind=item.kind,
        sentiment=item.sentiment, theme_id=item.membership.theme_id if item.membership else None,
        metadata=item.metadata_json or {},
    )


@router.post("/feedback", status_code=status.HTTP_201_CREATED, operation_id="create_feedback")
def create_feedback(body: FeedbackCreate | FeedbackBatch, loop: LoopDep, session: SessionDep,
                    _role: RoleDep) -> IngestResult:
    """Store one item, or a batch as ``{"items": [...]}``; re-sent items (same channel and id) add nothing."""
    entries = body.items if isinstance(body, FeedbackBatch) else [body]
    drafts = [ItemDraft(text=entry.text, channel=entry.channel, external_id=entry.external_id,
                        author=entry.author, url=entry.url, created_at=entry.created_at,
                        metadata=dict(entry.metadata)) for entry in entries]
    report = ingest(loop, session, drafts)
    return IngestResult(created=report.created, updated=report.updated, duplicates=report.duplicates,
                        ids=report.item_ids)


@router.get("/feedback", operation_id="list_feedback")
def list_feedback(
    session: SessionDep,
    _role: RoleDep,
    channel: str | None = None,
    kind: Annotated[str | None, Query(pattern="^(idea|complaint|question|praise)$")] = None,
    theme_id: int | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Text contains (case-insensitive)")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> FeedbackPage:
    """Stored feedback, newest first, with filters and pagination; texts are redacted."""
    where = ItemFilter(channel=channel, kind=kind, theme_id=theme_id, contains=q, since=since, until=until)
    total, items = list_items(session, where, limit, offset)
    return FeedbackPage(total=total, limit=limit, offset=offset, items=[public_item(item) for item in items])
