"""The web dashboard: server-rendered pages over the same core queries as the API.

Pages show redacted text only. They carry no API key check: serve on loopback, or put the dashboard
behind your reverse proxy's sign-in (see README).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.deps import SessionDep
from api.inputs import ThemeIdPath
from core.intake.queries import ItemFilter, inboxes, list_items
from core.themes.views import get_theme, theme_view, theme_views

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))


@router.get("/", response_class=HTMLResponse)
def themes_page(request: Request, session: SessionDep) -> HTMLResponse:
    views = theme_views(session)
    return templates.TemplateResponse(request, "themes.html", {"themes": views,
                                                               "total": sum(v.volume for v in views)})


@router.get("/themes/{theme_id}", response_class=HTMLResponse)
def theme_page(theme_id: ThemeIdPath, request: Request, session: SessionDep) -> HTMLResponse:
    theme = get_theme(session, theme_id)
    _, items = list_items(session, ItemFilter(theme_id=theme_id), limit=200, offset=0)
    return templates.TemplateResponse(request, "theme.html",
                                      {"theme": theme_view(session, theme), "items": items})


@router.get("/inbox", response_class=HTMLResponse)
def inbox_page(request: Request, session: SessionDep) -> HTMLResponse:
    return templates.TemplateResponse(request, "inbox.html", {"inboxes": inboxes(session)})
