"""A theme's "you said, we did" entry over the API: read it (read), publish or update it, take it down (pm)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import LoopDep, PmKey, ReadKey, SessionDep
from api.errors import API_ERRORS, error_responses
from api.inputs import ThemeIdPath
from core.community.models_published import MAX_TEXT_CHARS, MAX_TITLE_CHARS
from core.community.published import PublicEntry, entry_for_theme, publish, unpublish
from core.errors import NotFound

router = APIRouter(prefix="/api/v1", tags=["public page"], responses=error_responses(*API_ERRORS))


class PublicationBody(BaseModel):
    """What to publish: the product manager's own words, plain text (HTML is refused)."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS, description="The entry's public title.")
    you_said: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="What people asked for.")
    we_did: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="What was done about it.")


class Publication(BaseModel):
    """A published entry as saved: personal data and authors' names already replaced by placeholders."""

    title: str
    you_said: str
    we_did: str
    published_at: datetime
    updated_at: datetime


class PublicationSaved(Publication):
    created: bool = Field(description="True when the theme was not published before.")
    altered: bool = Field(description="True when saving replaced personal data, names or invisible characters.")


def _out(entry: PublicEntry) -> Publication:
    return Publication(title=entry.title, you_said=entry.you_said, we_did=entry.we_did,
                       published_at=entry.published_at, updated_at=entry.updated_at)


@router.get("/themes/{theme_id}/publication", operation_id="get_publication", responses=error_responses(404))
def get_publication(theme_id: ThemeIdPath, session: SessionDep, _caller: ReadKey) -> Publication:
    """The theme's entry on the public page; 404 when it is not published."""
    entry = entry_for_theme(session, theme_id)
    if entry is None:
        raise NotFound(f"theme {theme_id} is not published")
    return _out(entry)


@router.put("/themes/{theme_id}/publication", operation_id="publish_theme",
            responses=error_responses(404, 409, 503))
def put_publication(theme_id: ThemeIdPath, body: PublicationBody, loop: LoopDep, session: SessionDep,
                    caller: PmKey) -> PublicationSaved:
    """Publish the theme on the public page with these texts, or update its entry (audited)."""
    done = publish(loop, session, theme_id, caller.actor, title=body.title, you_said=body.you_said,
                   we_did=body.we_did)
    return PublicationSaved(**_out(done.entry).model_dump(), created=done.created, altered=done.altered)


@router.delete("/themes/{theme_id}/publication", status_code=status.HTTP_204_NO_CONTENT,
               operation_id="unpublish_theme", responses=error_responses(404, 503))
def delete_publication(theme_id: ThemeIdPath, session: SessionDep, caller: PmKey) -> Response:
    """Take the theme's entry off the public page and feed at once (audited)."""
    unpublish(session, theme_id, caller.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
