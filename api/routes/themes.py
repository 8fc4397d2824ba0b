from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from api.deps import LoopDep, PmKey, ReadKey, SessionDep
from api.errors import API_ERRORS, error_responses
from api.inputs import ItemIdPath, Offset, ThemeIdPath
from api.routes.feedback import public_item
from api.schemas import AreaPublic, ItemPlacement, ThemeDetail, ThemeMerge, ThemePublic, ThemeSplit, ThemeUpdate
from core.intake.queries import ItemFilter, list_items
from core.loop import FeedbackLoop
from core.themes.areas import area_views
from core.themes.review import merge_themes, move_item, split_theme, update_theme
from core.themes.views import get_theme, theme_view, theme_views
from core.types import ThemeView

router = APIRouter(prefix="/api/v1", tags=["themes"], responses=error_responses(*API_ERRORS))
# Writes name a theme or item that may not exist, may meet a state that refuses them, and commit.
WRITE_ERRORS = error_responses(404, 409, 503)


def public_theme(view: ThemeView) -> ThemePublic:
    return ThemePublic(id=view.id, label=view.label, keywords=view.keywords, status=view.status,
                       owner=view.owner, volume=view.volume, share_of_voice=view.share_of_voice,
                       mean_sentiment=view.mean_sentiment, kinds=dict(view.kinds),
                       channels=dict(view.channels), quotes=view.quotes, area_id=view.area_id,
                       area_label=view.area_label)


@router.get("/areas", operation_id="list_areas")
def list_areas(session: SessionDep, _caller: ReadKey) -> list[AreaPublic]:
    """Areas (groups of themes: a product area, a topic) that hold an active theme, largest first, with
    their volume, share of voice and trend; each theme in /themes names its area."""
    return [AreaPublic(**asdict(view)) for view in area_views(session)]


@router.get("/themes", operation_id="list_themes")
def list_themes(session: SessionDep, _caller: ReadKey) -> list[ThemePublic]:
    """Active themes, largest first, with volume, share of voice, mean sentiment and owner."""
    return [public_theme(view) for view in theme_views(session)]


@router.get("/themes/{theme_id}", operation_id="get_theme", responses=error_responses(404))
def get_theme_detail(theme_id: ThemeIdPath, session: SessionDep, _caller: ReadKey,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100,
                     offset: Offset = 0) -> ThemeDetail:
    """One theme with its metrics and its items (redacted)."""
    theme = get_theme(session, theme_id)
    _, items = list_items(session, ItemFilter(theme_id=theme_id), limit, offset)
    summary = public_theme(theme_view(session, theme))
    return ThemeDetail(**summary.model_dump(), items=[public_item(item) for item in items])


@router.patch("/themes/{theme_id}", operation_id="update_theme", responses=WRITE_ERRORS)
def patch_theme(theme_id: ThemeIdPath, body: ThemeUpdate,
                loop: LoopDep, session: SessionDep, caller: PmKey) -> ThemePublic:
    """Rename a theme (the name then survives re-clustering), set its status, pick its owner, or move it into
    another area (``area_id``; it then stays there through re-clustering)."""
    theme = update_theme(loop, session, theme_id, actor=caller.actor, label=body.label,
                         status=body.status, owner=body.owner, area_id=body.area_id)
    return public_theme(theme_view(session, theme))


@router.post("/themes/{theme_id}/merge", operation_id="merge_theme", responses=WRITE_ERRORS)
def post_merge(theme_id: ThemeIdPath, body: ThemeMerge,
               loop: LoopDep, session: SessionDep, caller: PmKey) -> ThemePublic:
    """Merge this theme into another; later re-clusterings keep them merged."""
    target = merge_themes(loop, session, theme_id, body.into, actor=caller.actor)
    return public_theme(theme_view(session, target))


@router.post("/themes/{theme_id}/split", status_code=201, operation_id="split_theme", responses=WRITE_ERRORS)
def post_split(theme_id: ThemeIdPath, body: ThemeSplit,
               loop: LoopDep, session: SessionDep, caller: PmKey) -> ThemePublic:
    """Split the given items off into a new, named theme; they stay there through re-clustering."""
    new_theme = split_theme(loop, session, theme_id, body.item_ids, body.label, actor=caller.actor)
    return public_theme(theme_view(session, new_theme))


@router.post("/feedback/{item_id}/move", operation_id="move_item", responses=WRITE_ERRORS)
def post_move(item_id: ItemIdPath, body: ItemPlacement,
              loop: LoopDep, session: SessionDep, caller: PmKey) -> ThemePublic:
    """Move an item to a theme by hand; it stays there, and near-identical items follow it."""
    return _place(loop, session, item_id, body.theme_id, caller.actor, "move")


@router.post("/feedback/{item_id}/pin", operation_id="pin_item", responses=WRITE_ERRORS)
def post_pin(item_id: ItemIdPath, body: ItemPlacement,
             loop: LoopDep, session: SessionDep, caller: PmKey) -> ThemePublic:
    """Pin an item in a theme: re-clustering never moves it."""
    return _place(loop, session, item_id, body.theme_id, caller.actor, "pin")


def _place(loop: FeedbackLoop, session: Session, item_id: int, theme_id: int, actor: str, action: str) -> ThemePublic:
    membership = move_item(loop, session, item_id, theme_id, actor=actor, action=action)
    return public_theme(theme_view(session, get_theme(session, membership.theme_id)))
