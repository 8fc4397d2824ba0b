from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from api.deps import IntakeKey, LoopDep, ReadKey, SessionDep
from api.errors import API_ERRORS, error_responses
from api.inputs import Offset, ThemeIdQuery, UtcDatetime
from api.request_ids import RequestIdDep
from api.schemas import FeedbackBatch, FeedbackCreate, FeedbackPage, FeedbackPublic, IngestResult
from core.intake.api_channels import ingest_from_api
from core.intake.queries import ItemFilter, list_items
from core.models import FeedbackItem
from core.types import ItemDraft

router = APIRouter(prefix="/api/v1", tags=["feedback"], responses=error_responses(*API_ERRORS))


def public_item(item: FeedbackItem) -> FeedbackPublic:
    return FeedbackPublic(
        id=item.id, channel=item.channel, external_id=item.external_id, text=item.text_redacted,
        author=item.author_pseudonym, url=item.url, created_at=item.created_at, kind=item.kind,
        sentiment=item.sentiment, theme_id=item.membership.theme_id if item.membership else None,
        metadata=item.metadata_json or {},
    )


@router.post("/feedback", status_code=status.HTTP_201_CREATED, operation_id="create_feedback",
             responses=error_responses(503))
def create_feedback(body: FeedbackCreate | FeedbackBatch, loop: LoopDep, session: SessionDep,
                    caller: IntakeKey, request_id: RequestIdDep) -> IngestResult:
    """Store one item, or a batch as ``{"items": [...]}``; re-sent items (same channel and id) add nothing."""
    entries = body.items if isinstance(body, FeedbackBatch) else [body]
    drafts = [ItemDraft(text=entry.text, channel=entry.channel, external_id=entry.external_id,
                        author=entry.author, url=entry.url, created_at=entry.created_at,
                        metadata=dict(entry.metadata), request_id=request_id) for entry in entries]
    report = ingest_from_api(loop, session, drafts, caller.writable_channels())
    return IngestResult(created=report.created, updated=report.updated, duplicates=report.duplicates,
                        ids=report.item_ids)


@router.get("/feedback", operation_id="list_feedback")
def list_feedback(
    session: SessionDep,
    _caller: ReadKey,
    channel: str | None = None,
    kind: Annotated[str | None, Query(pattern="^(idea|complaint|question|praise)$")] = None,
    theme_id: ThemeIdQuery = None,
    q: Annotated[str | None, Query(max_length=200, description="Text contains (case-insensitive)")] = None,
    since: UtcDatetime | None = None,
    until: UtcDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> FeedbackPage:
    """Stored feedback, newest first, with filters and pagination; texts are redacted."""
    where = ItemFilter(channel=channel, kind=kind, theme_id=theme_id, contains=q, since=since, until=until)
    total, items = list_items(session, where, limit, offset)
    return FeedbackPage(total=total, limit=limit, offset=offset, items=[public_item(item) for item in items])
