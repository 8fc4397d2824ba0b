from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from api.deps import LoopDep, RoleDep, SessionDep
from api.routes.feedback import public_item
from api.schemas import ThemeDetail, ThemePublic, ThemeUpdate
from core.models import Theme
from core.queries import ItemFilter, list_items
from core.review import ReviewError, update_theme
from core.themes import theme_view, theme_views
from core.types import ThemeView

router = APIRouter(prefix="/api/v1", tags=["themes"])


def public_theme(view: ThemeView) -> ThemePublic:
    return ThemePublic(id=view.id, label=view.label, keywords=view.keywords, status=view.status,
                       owner=view.owner, volume=view.volume, share_of_voice=view.share_of_voice,
                       mean_sentiment=view.mean_sentiment, kinds=dict(view.kinds),
                       channels=dict(view.channels), quotes=view.quotes)


@router.get("/themes", operation_id="list_themes")
def list_themes(session: SessionDep, _role: RoleDep) -> list[ThemePublic]:
    """Active themes, largest first, with volume, share of voice, mean sentiment and owner."""
    return [public_theme(view) for view in theme_views(session)]


@router.get("/themes/{theme_id}", operation_id="get_theme")
def get_theme(theme_id: int, session: SessionDep, _role: RoleDep,
              limit: Annotated[int, Query(ge=1, le=500)] = 100,
              offset: Annotated[int, Query(ge=0)] = 0) -> ThemeDetail:
    """One theme with its metrics and its items (redacted)."""
    theme = session.get(Theme, theme_id)
    if theme is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no theme with id {theme_id}")
    _, items = list_items(session, ItemFilter(theme_id=theme_id), limit, offset)
    summary = public_theme(theme_view(session, theme))
    return ThemeDetail(**summary.model_dump(), items=[public_item(item) for item in items])


@router.patch("/themes/{theme_id}", operation_id="update_theme")
def patch_theme(theme_id: int, body: ThemeUpdate, loop: LoopDep, session: SessionDep, role: RoleDep) -> ThemePublic:
    """Rename a theme (the name then survives re-clustering), set its status, or pick its owner."""
    try:
        theme = update_theme(loop, session, theme_id, actor=f"api:{role}", label=body.label,
                             status=body.status, owner=body.owner)
    except ReviewError as error:
        raise HTTPException(error.status_code, detail=str(error)) from error
    return public_theme(theme_view(session, theme))
