"""What the admin pages share: the flash message, refusals that re-render a form, the confirm step.

A change is posted, done in the request's transaction and answered with a 303 to the page it came from,
carrying a short message (``?done=``). Input the core refuses (``InvalidInput``, ``Conflict``,
``NotFound``) is not an error page: the form comes back with the message and the 4xx status, and the
transaction is rolled back first, so nothing of the refused change (an audit entry, a half-made row) is
committed by the session dependency on the way out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from api.pages.common import CurrentUser, render, see_other
from core.errors import FeedbackloopError

MAX_FLASH_CHARS = 300


@dataclass(frozen=True)
class Confirmation:
    """A confirm step: what will change, why it may hurt, and the form that does it."""

    title: str
    lines: list[str]
    post_to: str
    back: str
    warnings: list[str] = field(default_factory=list)
    hidden: list[tuple[str, str]] = field(default_factory=list)
    button: str = "Apply"
    danger: bool = False


def flash(request: Request) -> str:
    return request.query_params.get("done", "")[:MAX_FLASH_CHARS]


def done(path: str, message: str) -> Response:
    """The 303 after a change: back to ``path`` with the message to show."""
    return see_other(f"{path}?{urlencode([('done', message[:MAX_FLASH_CHARS])])}")


def refused_status(error: FeedbackloopError) -> int:
    """The 4xx a refused form answers with (a core error with an odd status still answers 4xx)."""
    return error.status_code if 400 <= error.status_code < 500 else 422


def forget_change(session: Session) -> None:
    """Roll back what a refused change left in the session (the page is then rendered from the database)."""
    session.rollback()


def render_confirm(request: Request, current: CurrentUser, session: Session,
                   confirmation: Confirmation) -> HTMLResponse:
    return render(request, "admin_confirm.html", current, {"confirm": confirmation}, session=session)


def digest(text: str) -> str:
    """The SHA-256 of a text: what a preview names, so a save can tell it is saving what was previewed."""
    return hashlib.sha256(text.encode()).hexdigest()


def form_raw(form: FormData, name: str) -> str:
    """A field as typed (not stripped: a password, a template, a file); "" when absent or not text."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def normal_newlines(text: str) -> str:
    """Browsers send a textarea's line breaks as CRLF; files and templates are kept with LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")
