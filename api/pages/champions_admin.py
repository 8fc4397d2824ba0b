"""The co-creation invitation's template (``/admin/invitation-template``), saved as
``PUT /api/v1/champions/invitation-template`` saves it (core/community/invitations.py): checked, audited,
and shown as it reads for a theme before and after saving."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import LoopDep, SessionDep
from api.pages.admin_common import done, flash, forget_change, form_raw, normal_newlines, refused_status
from api.pages.common import AdminUser, CheckedForm, CurrentUser, render
from core.community.invitations import KINDS, invitation_template, invitation_text, set_invitation_template
from core.errors import FeedbackloopError
from core.loop import FeedbackLoop
from core.models import Theme
from core.routing.messages import theme_link
from core.routing.replies import TemplateError

router = APIRouter(include_in_schema=False)
PAGE = "/admin/invitation-template"
MAX_TEMPLATE_CHARS = 5_000
EXAMPLE_THEME = "Dark mode on mobile"


def _page(request: Request, current: CurrentUser, session: Session, loop: FeedbackLoop, text: str | None = None,
          error: str | None = None, status_code: int = 200) -> HTMLResponse:
    theme = session.scalar(select(Theme).where(Theme.merged_into_id.is_(None)).order_by(Theme.id.desc()).limit(1))
    label, link = ((theme.label, theme_link(loop.settings.public_url, theme.id)) if theme is not None
                   else (EXAMPLE_THEME, theme_link(loop.settings.public_url, 1)))
    saved = invitation_template(session)
    return render(request, "admin_invitation_template.html", current, {
        "template": text if text is not None else saved, "theme_label": label,
        "examples": [(words, invitation_text(saved, label, kind, link)) for kind, words in KINDS.items()],
        "done": flash(request), "error": error}, status_code=status_code, session=session)


@router.get(PAGE, response_class=HTMLResponse)
def invitation_template_page(request: Request, current: AdminUser, session: SessionDep,
                             loop: LoopDep) -> HTMLResponse:
    return _page(request, current, session, loop)


@router.post(PAGE, response_class=HTMLResponse)
def save_invitation_template(request: Request, current: AdminUser, session: SessionDep, loop: LoopDep,
                             form: CheckedForm) -> Response:
    text = normal_newlines(form_raw(form, "template"))
    try:
        if len(text) > MAX_TEMPLATE_CHARS:
            raise TemplateError(f"the template is at most {MAX_TEMPLATE_CHARS} characters")
        set_invitation_template(session, text, actor=current.actor)
    except FeedbackloopError as error:
        forget_change(session)
        return _page(request, current, session, loop, text[:MAX_TEMPLATE_CHARS], error=error.message,
                     status_code=refused_status(error))
    return done(PAGE, "Invitation template saved.")
