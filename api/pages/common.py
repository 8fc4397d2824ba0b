"""What every workspace page shares: the signed-in person, role checks, CSRF-checked forms, rendering.

A page without a live session redirects to /signin (which brings the person back afterwards). Every form
that changes something carries the session's CSRF token in a hidden ``csrf_token`` field, and its
``Origin`` (when the browser sends one) must be this server: a post from another site, or one without
the token, is refused with 403 before anything is read from it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from api.deps import SessionDep
from core.audit import user_actor
from core.auth.users import can_edit, is_admin
from core.auth.web_sessions import resolve_session
from core.errors import FeedbackloopError, Forbidden, InvalidInput
from core.models import User, WebSession
from core.settings import Settings
from core.themes.triage import nav_counts

SESSION_COOKIE = "feedbackloop_session"
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# Paths that answer machines in JSON; everything else is a page (errors render as HTML there).
MACHINE_PREFIXES = ("/api/", "/webhooks/", "/trackers/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs",
                    "/redoc")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class SignInRequired(FeedbackloopError):
    """No live session: the handler answers with a redirect to the sign-in page."""

    status_code = 303
    code = "sign_in_required"


@dataclass(frozen=True)
class CurrentUser:
    """The signed-in person of this request and their session."""

    user: User
    web_session: WebSession

    @property
    def csrf(self) -> str:
        return self.web_session.csrf_token

    @property
    def actor(self) -> str:
        return user_actor(self.user.email)

    @property
    def can_edit(self) -> bool:
        return can_edit(self.user.role)

    @property
    def is_admin(self) -> bool:
        return is_admin(self.user.role)


def templates(request: Request) -> Jinja2Templates:
    found: Jinja2Templates = request.app.state.templates
    return found


def make_templates() -> Jinja2Templates:
    return Jinja2Templates(directory=str(TEMPLATES_DIR))


def is_page_path(path: str) -> bool:
    return not path.startswith(MACHINE_PREFIXES)


def cookie_secure(settings: Settings, request: Request) -> bool:
    """Whether the session cookie gets the Secure flag: always, unless plain http on a loopback host."""
    if settings.cookie_secure is not None:
        return settings.cookie_secure
    return request.url.scheme == "https" or request.url.hostname not in LOOPBACK_HOSTS


def signed_in(request: Request, session: SessionDep) -> CurrentUser | None:
    settings: Settings = request.app.state.loop.settings
    found = resolve_session(session, request.cookies.get(SESSION_COOKIE),
                            idle=timedelta(minutes=settings.session_idle_minutes))
    return CurrentUser(found.user, found) if found is not None else None


MaybeUser = Annotated[CurrentUser | None, Depends(signed_in)]


def require_user(request: Request, current: MaybeUser) -> CurrentUser:
    if current is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(f"/signin?next={quote(target, safe='')}")
    return current


PageUser = Annotated[CurrentUser, Depends(require_user)]


def require_editor(current: PageUser) -> CurrentUser:
    if not current.can_edit:
        raise Forbidden(f"your role ({current.user.role}) reads themes but does not change them; "
                        "ask an admin for the pm role")
    return current


def require_admin(current: PageUser) -> CurrentUser:
    if not current.is_admin:
        raise Forbidden("this page is for admins")
    return current


EditorUser = Annotated[CurrentUser, Depends(require_editor)]
AdminUser = Annotated[CurrentUser, Depends(require_admin)]


def same_origin(request: Request) -> bool:
    """False when the browser says the form came from another origin (no Origin header: no claim)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    return (parts.scheme, parts.netloc) == (request.url.scheme, request.url.netloc)


async def checked_form(request: Request, current: PageUser) -> FormData:
    """The posted form, once its CSRF token matches the session's and its origin is this server."""
    if not same_origin(request):
        raise Forbidden("this form was posted from another site")
    form = await request.form()
    token = form.get("csrf_token")
    if not isinstance(token, str) or not hmac.compare_digest(token.encode(), current.csrf.encode()):
        raise Forbidden("the form's CSRF token is missing or out of date; reload the page and try again")
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]


def render(request: Request, name: str, current: CurrentUser | None, context: dict[str, Any] | None = None,
           status_code: int = 200, session: Session | None = None) -> HTMLResponse:
    """A page; with the request's database session the navigation shows the triage and inbox counts."""
    values: dict[str, Any] = {"current": current, "path": request.url.path, "nav_counts": None}
    if current is not None and session is not None:
        values["nav_counts"] = nav_counts(session, current.user)
    values.update(context or {})
    return templates(request).TemplateResponse(request, name, values, status_code=status_code)


def form_text(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name, default)
    return value.strip() if isinstance(value, str) else default


def form_ids(form: FormData, name: str) -> list[int]:
    """The integer ids of a repeated field (checkboxes); anything else is refused."""
    values = []
    for value in form.getlist(name):
        if not isinstance(value, str) or not value.isdigit() or len(value) > 12:
            raise InvalidInput(f"{name} must be item ids")
        values.append(int(value))
    return values


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: only a path on this server (never //host or a scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def see_other(location: str) -> Response:
    return Response(status_code=303, headers={"Location": location})
