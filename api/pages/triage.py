"""The triage queue (``/triage``), the owners' inboxes (``/inbox``) and the live counts (``/live``).

Triage actions are the theme actions of api/pages/theme.py (accept = set status "triaged", assign,
ignore, merge; an item placed with little confidence can be kept, i.e. pinned), posted straight from
the queue, each audited and undoable from the theme's history; accept, assign, ignore and keep apply at
once from here because the queue row already says what they change. ``/live`` is what the pages poll
(static/workspace.js) to show new feedback and spikes without a reload.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import func, select

from api.deps import LoopDep, SessionDep
from api.inputs import ItemIdPath, ThemeIdPath
from api.pages.common import CheckedForm, EditorUser, PageUser, form_text, render, see_other
from core.errors import InvalidInput
from core.intake.queries import inboxes
from core.models import FeedbackItem, Owner, SpikeAlert, ThemeMembership
from core.themes.actions import apply
from core.themes.review import move_item
from core.themes.triage import nav_counts, triage_queue
from core.types import ThemeStatus

router = APIRouter(include_in_schema=False)
TRIAGE_ACTIONS = {"accept": ("set_status", {"status": ThemeStatus.TRIAGED.value}),
                  "ignore": ("ignore", {})}


@router.get("/triage", response_class=HTMLResponse)
def triage_page(request: Request, current: PageUser, session: SessionDep) -> HTMLResponse:
    queue = triage_queue(session)
    owners = list(session.scalars(select(Owner.name).order_by(Owner.name)))
    return render(request, "triage.html", current, {"queue": queue, "owners": owners,
                                                    "done": request.query_params.get("done", "")[:200]},
                  session=session)


@router.post("/triage/{theme_id}")
def triage_action(theme_id: ThemeIdPath, current: EditorUser, session: SessionDep, loop: LoopDep,
                  form: CheckedForm) -> Response:
    verdict = form_text(form, "verdict")
    if verdict == "assign":
        owner = form_text(form, "owner")
        if not owner:
            raise InvalidInput("name the owner to assign")
        applied = apply(loop, session, "set_owner", theme_id, current.actor, owner=owner)
    elif verdict in TRIAGE_ACTIONS:
        action, params = TRIAGE_ACTIONS[verdict]
        applied = apply(loop, session, action, theme_id, current.actor, **params)
    else:
        raise InvalidInput("verdict must be one of accept, assign, ignore (merge from the theme's page)")
    return see_other(f"/triage?{urlencode([('done', applied.message)])}")


@router.post("/triage/items/{item_id}")
def triage_item(item_id: ItemIdPath, current: EditorUser, session: SessionDep, loop: LoopDep,
                form: CheckedForm) -> Response:
    """Keep an item the clustering was unsure of where it is: pinned there (audited, undoable)."""
    if form_text(form, "verdict") != "keep":
        raise InvalidInput("verdict must be keep (move an item from its theme's page)")
    membership = session.get(ThemeMembership, item_id)
    if membership is None:
        raise InvalidInput(f"item {item_id} is in no theme; there is nowhere to keep it")
    move_item(loop, session, item_id, membership.theme_id, current.actor, action="pin")
    return see_other(f"/triage?{urlencode([('done', f'Item {item_id} kept in its theme.')])}")


@router.get("/inbox", response_class=HTMLResponse)
def inbox_page(request: Request, current: PageUser, session: SessionDep) -> HTMLResponse:
    by_owner = inboxes(session)
    team = current.user.owner.name if current.user.role == "owner" and current.user.owner else None
    if current.user.role == "owner":
        by_owner = {team: by_owner.get(team, [])} if team else {}
    return render(request, "inbox.html", current, {"inboxes": by_owner, "team": team}, session=session)


@router.get("/live")
def live_counts(current: PageUser, session: SessionDep) -> JSONResponse:
    """Counts the pages poll: new items (by the newest id), open triage entries and tickets, spike notices."""
    newest = session.scalar(select(func.max(FeedbackItem.id)))
    spikes = int(session.scalar(select(func.count()).select_from(SpikeAlert)) or 0)
    counts = nav_counts(session, current.user)
    return JSONResponse({"newest_item": int(newest or 0), "spikes": spikes, **counts},
                        headers={"Cache-Control": "no-store"})
