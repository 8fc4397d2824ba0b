"""A theme's page (``/themes/{id}``) and its actions: each is previewed, then applied, then undoable.

An action is two requests, so it works without JavaScript: ``GET /themes/{id}/preview?action=...`` shows
what will change and a confirm button (a form with the session's CSRF token); ``POST /themes/{id}/apply``
does it and comes back to the theme with "Undo" beside the message. After a move or a split the page
offers the items most like the moved ones (core/themes/suggestions.py): accepting moves them, rejecting
is remembered so later clusterings do not put them there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, QueryParams

from api.deps import LoopDep, SessionDep
from api.inputs import ThemeIdPath
from api.pages.champions import champions_context
from api.pages.charts import timeline_svg
from api.pages.common import CheckedForm, EditorUser, PageUser, form_ids, form_text, render, see_other
from api.pages.public import publication_context
from core.errors import InvalidInput
from core.loop import FeedbackLoop
from core.models import Area, AuditEntry, Owner, Theme
from core.routing.plan import send_deliveries
from core.themes.actions import ACTIONS, apply, describe
from core.themes.overview_filter import MAX_SEARCH_CHARS
from core.themes.suggestions import decide_suggestions, rank_for_move
from core.themes.timeline import (
    HistoryRow,
    TimelineBucket,
    channel_mix,
    theme_history,
    theme_items,
    theme_tickets,
    theme_timeline,
)
from core.themes.undo import REQUIRED_DETAILS, preview_undo, undo
from core.themes.views import get_theme, theme_view
from core.types import INACTIVE_STATUSES, ThemeStatus

router = APIRouter(include_in_schema=False)
AuditIdPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="An audit entry's id.")]
PICKER_LIMIT = 20
SUGGESTIONS_SHOWN = 10
MAX_SELECTED = 500


@dataclass(frozen=True)
class HistoryLine:
    row: HistoryRow
    undoable: bool
    undone: bool
    summary: str


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _count(value: object) -> int:
    return len(value) if isinstance(value, list) else 0


def summarise(action: str, details: dict[str, Any]) -> str:
    """An audit entry's details in words, for the history table."""
    get = details.get
    described = {
        "rename": lambda: f"“{get('from')}” → “{get('to')}”",
        "set_status": lambda: f"{get('from')} → {get('to')}",
        "set_owner": lambda: f"{get('from') or 'nobody'} → {get('to')}",
        "set_area": lambda: f"area {get('from') or '–'} → area {get('to')}",
        "assign_owner": lambda: f"{get('owner')} (rule {get('rule')})",
        "merge": lambda: f"into theme {get('into', get('target'))}, {_count(get('items'))} items",
        "split": lambda: f"{_count(get('items'))} items into new theme {get('new_theme')}",
        "move": lambda: f"item {get('item')} from theme {get('from') or '–'}"
                        + (" (a suggestion)" if get("suggested") else ""),
        "pin": lambda: f"item {get('item')} kept here",
        "move_items": lambda: f"{_count(get('items'))} items to theme {get('to')}",
        "reject_suggestion": lambda: f"{_count(get('items'))} suggested items kept out",
        "undo": lambda: f"undid {get('action', 'a change')}",
    }
    if action in described:
        return described[action]()
    return "; ".join(f"{key}: {value}" for key, value in details.items()
                     if key not in ("before", "redirected", "merged_into_before"))[:200]


def _history(session: Session, theme_id: int) -> list[HistoryLine]:
    rows = theme_history(session, theme_id)
    undone = set(session.scalars(select(AuditEntry.id).where(AuditEntry.id.in_([r.id for r in rows]),
                                                              AuditEntry.undone_by_id.is_not(None))))
    return [HistoryLine(row, row.action in REQUIRED_DETAILS and row.id not in undone
                        and all(key in row.details for key in REQUIRED_DETAILS[row.action]), row.id in undone,
                        summarise(row.action, row.details))
            for row in rows]


def _from_first_item(buckets: list[TimelineBucket], least: int = 8) -> list[TimelineBucket]:
    """The timeline from the theme's first item on (a young theme is not drawn as months of nothing),
    keeping at least ``least`` buckets."""
    first = next((index for index, bucket in enumerate(buckets) if bucket.volume), len(buckets))
    return buckets[max(0, min(first, len(buckets) - least)):]


def _action_params(values: FormData | QueryParams) -> dict[str, Any]:
    """The action's parameters from a form or query string, typed as core/themes/actions.py expects."""
    params: dict[str, Any] = {}
    for name in ("label", "status", "owner"):
        text = values.get(name)
        if isinstance(text, str) and text.strip():
            params[name] = text.strip()
    for name in ("into", "to", "source", "area"):
        text = values.get(name)
        if isinstance(text, str) and text.strip():
            if not text.strip().isdigit() or len(text.strip()) > 12:
                raise InvalidInput(f"{name} must be {'an area' if name == 'area' else 'a theme'} id")
            params[name] = int(text)
    items = [value for value in values.getlist("item") if isinstance(value, str)]
    if items:
        if len(items) > MAX_SELECTED:
            raise InvalidInput(f"select at most {MAX_SELECTED} items at once")
        if not all(value.isdigit() and len(value) <= 12 for value in items):
            raise InvalidInput("item must be item ids")
        params["item_ids"] = [int(value) for value in items]
    return params


def _target(action: str, theme_id: int, params: dict[str, Any]) -> int:
    """The theme an action is about: a move is about where the items go."""
    if action == "move":
        if "to" not in params:
            raise InvalidInput("pick the theme to move the selected items to")
        params.setdefault("source", theme_id)
        return int(params["to"])
    return theme_id


@router.get("/themes/{theme_id}", response_class=HTMLResponse)
def theme_page(theme_id: ThemeIdPath, request: Request, current: PageUser, session: SessionDep, loop: LoopDep,
               q: Annotated[str, Query(max_length=MAX_SEARCH_CHARS)] = "",
               page: Annotated[int, Query(ge=1, le=10_000)] = 1,
               grain: Annotated[str, Query(pattern="^(day|week)$")] = "day",
               pick: Annotated[str, Query(max_length=MAX_SEARCH_CHARS)] = "",
               done: Annotated[str, Query(max_length=200)] = "",
               undo_id: Annotated[int | None, Query(alias="undo", ge=1, le=2**31 - 1)] = None,
               moved: Annotated[list[int] | None, Query(max_length=MAX_SELECTED)] = None,
               source: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> HTMLResponse:
    theme = get_theme(session, theme_id)
    view = theme_view(session, theme)
    suggestions = None
    if moved and source is not None and current.can_edit:
        suggestions = rank_for_move(loop, session, source, list(moved), theme.id, limit=SUGGESTIONS_SHOWN)
    picker = []
    if pick.strip():
        pattern = f"%{pick.strip().lower()}%"
        picker = list(session.scalars(
            select(Theme).where(Theme.id != theme.id, Theme.status.not_in(INACTIVE_STATUSES),
                                Theme.label.ilike(pattern)).order_by(Theme.label).limit(PICKER_LIMIT)))
    owners = list(session.scalars(select(Owner.name).order_by(Owner.name)))
    areas = list(session.execute(select(Area.id, Area.label).order_by(Area.label, Area.id)).all())
    timeline = _from_first_item(theme_timeline(session, theme.id, grain=grain))
    return render(request, "theme.html", current, {
        "theme": theme, "view": view, "timeline": timeline,
        "timeline_svg": timeline_svg(timeline, label=f"{theme.label}: items and mean sentiment per {grain}"),
        "grain": grain, "mix": channel_mix(session, theme.id), "items": theme_items(session, theme.id, q, page),
        "q": q, "tickets": theme_tickets(session, theme.id), "history": _history(session, theme.id),
        "statuses": [s.value for s in ThemeStatus if s not in INACTIVE_STATUSES], "owners": owners, "areas": areas,
        "pick": pick, "picker": picker, "done": done, "undo_id": undo_id, "suggestions": suggestions,
        "moved": moved or [], "source": source,
        **champions_context(loop, session, theme.id),  # the "Champions" section (api/pages/champions.py)
        **publication_context(loop, session, theme),  # the "you said, we did" form (api/pages/public.py)
        "source_label": get_theme(session, source).label if suggestions is not None and source else ""},
        session=session)


@router.get("/themes/{theme_id}/preview", response_class=HTMLResponse)
def preview_page(theme_id: ThemeIdPath, request: Request, current: EditorUser, session: SessionDep,
                 loop: LoopDep, action: Annotated[str, Query(max_length=32)]) -> HTMLResponse:
    if action not in ACTIONS:
        raise InvalidInput(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    params = _action_params(request.query_params)
    target = _target(action, theme_id, params)
    described = describe(loop, session, action, target, **params)
    hidden = [(name, str(value)) for name, value in params.items() if name != "item_ids"]
    hidden += [("item", str(item)) for item in params.get("item_ids", [])]
    return render(request, "preview.html", current, {
        "preview": described, "theme": get_theme(session, theme_id), "action": action, "hidden": hidden,
        "post_to": f"/themes/{theme_id}/apply"}, session=session)


def _send_now(loop: FeedbackLoop) -> None:
    if loop.kicks.enabled:  # Celery workers send it (their deliveries queue); the outbox row is committed
        loop.kicks.kick("deliveries")
    else:
        send_deliveries(loop)


@router.post("/themes/{theme_id}/apply")
def apply_action(theme_id: ThemeIdPath, current: EditorUser, session: SessionDep, loop: LoopDep,
                 form: CheckedForm, background: BackgroundTasks) -> Response:
    action = form_text(form, "action")
    if action not in ACTIONS:
        raise InvalidInput(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    params = _action_params(form)
    target = _target(action, theme_id, params)
    applied = apply(loop, session, action, target, current.actor, **params)
    if action == "route":
        background.add_task(_send_now, loop)  # after the commit and the answer: the outbox row is stored
    query = [("done", applied.message)] + ([("undo", str(applied.audit_id))] if applied.audit_id else [])
    if applied.moved_item_ids and applied.source_theme_id is not None:
        query += [("source", str(applied.source_theme_id))] + [("moved", str(i)) for i in applied.moved_item_ids]
    return see_other(f"/themes/{applied.theme_id}?{urlencode(query)}")


@router.get("/history/{audit_id}/undo", response_class=HTMLResponse)
def undo_preview_page(audit_id: AuditIdPath, request: Request, current: EditorUser,
                      session: SessionDep, back: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None
                      ) -> HTMLResponse:
    described = preview_undo(session, audit_id)
    return render(request, "preview.html", current, {
        "preview": described, "theme": get_theme(session, back) if back else None, "action": "undo",
        "hidden": [("back", str(back))] if back else [], "post_to": f"/history/{audit_id}/undo"},
        session=session)


@router.post("/history/{audit_id}/undo")
def undo_action(audit_id: AuditIdPath, current: EditorUser, session: SessionDep, loop: LoopDep,
                form: CheckedForm) -> Response:
    entry = undo(loop, session, audit_id, current.actor)
    back = form_text(form, "back")
    theme_id = back if back.isdigit() else entry.entity_id
    return see_other(f"/themes/{theme_id}?{urlencode([('done', 'Undone.')])}")


@router.post("/themes/{theme_id}/suggestions")
def decide(theme_id: ThemeIdPath, current: EditorUser, session: SessionDep, loop: LoopDep,
           form: CheckedForm) -> Response:
    shown = form_ids(form, "shown")
    chosen = set(form_ids(form, "item"))
    verdict = form_text(form, "verdict")
    if verdict not in ("accept", "reject"):
        raise InvalidInput("verdict must be accept or reject")
    if not chosen:
        chosen = set(shown)  # "move them all" / "none of these"
    accepted = sorted(chosen) if verdict == "accept" else []
    rejected = sorted(chosen) if verdict == "reject" else []
    decide_suggestions(loop, session, theme_id, accepted, rejected, current.actor)
    message = (f"Moved {plural(len(accepted), 'more item')}." if accepted
               else f"{plural(len(rejected), 'suggestion')} rejected: kept out of this theme from now on.")
    return see_other(f"/themes/{theme_id}?{urlencode([('done', message)])}")
