"""The theme page's "Champions" section and its actions: invite a champion to co-create (previewed, then
sent), and record their answer as consent or refusal (core/community/invitations.py does each)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from api.deps import LoopDep, SessionDep, commit_or_503
from api.inputs import ThemeIdPath
from api.pages.common import CheckedForm, EditorUser, form_text, render, see_other
from core.community.invitations import (
    KINDS,
    champion_lines,
    invitation_template,
    invitation_text,
    invite,
    plan_invitation,
    record_answer,
    send_invitation,
)
from core.community.models_champions import ANSWERS, SENT
from core.errors import InvalidInput
from core.loop import FeedbackLoop
from core.routing.messages import theme_link

router = APIRouter(include_in_schema=False)
PseudonymPath = Annotated[str, Path(pattern="^[0-9a-f]{16,64}$", description="An author's pseudonym.")]
KIND_CHOICES = [(kind, words.capitalize()) for kind, words in KINDS.items()]


@dataclass(frozen=True)
class InvitePreview:
    """What preview.html shows before an invitation goes out."""

    title: str
    lines: list[str]
    warnings: list[str] = field(default_factory=list)


def champions_context(loop: FeedbackLoop, session: Session, theme_id: int) -> dict[str, Any]:
    """What theme_champions.html needs, for the theme page's context."""
    lines, invitations = champion_lines(loop, session, theme_id)
    return {"champions": lines, "invitations": invitations, "invitation_kinds": KIND_CHOICES, "answers": ANSWERS}


def _kind(value: str) -> str:
    if value not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}")
    return value


def _back(theme_id: int, message: str) -> Response:
    return see_other(f"/themes/{theme_id}?{urlencode([('done', message)])}#champions-h")


@router.get("/themes/{theme_id}/champions/{pseudonym}/invite", response_class=HTMLResponse)
def invite_preview(theme_id: ThemeIdPath, pseudonym: PseudonymPath, request: Request, current: EditorUser,
                   session: SessionDep, loop: LoopDep, kind: Annotated[str, Query(max_length=32)]) -> HTMLResponse:
    plan = plan_invitation(loop, session, theme_id, pseudonym, kind)
    theme, target = plan.theme, plan.destination
    kind = plan.existing.kind if plan.existing is not None else kind  # a failed invitation is tried again as it was
    link = theme_link(loop.settings.public_url, theme.id)
    text = invitation_text(invitation_template(session), theme.label, kind, link)
    preview = InvitePreview(
        title=f"Invite {pseudonym[:12]} to co-create: {KINDS[kind]}",
        lines=[f"Posted once, in one of their threads in {target.channel} (one they opened, where there is one):",
               text, "They answer there; record their answer on the theme page. Nobody is invited twice."])
    return render(request, "preview.html", current, {
        "preview": preview, "theme": theme, "action": "invite", "hidden": [("kind", kind)],
        "post_to": f"/themes/{theme.id}/champions/{pseudonym}/invite"}, session=session)


@router.post("/themes/{theme_id}/champions/{pseudonym}/invite")
def invite_action(theme_id: ThemeIdPath, pseudonym: PseudonymPath, current: EditorUser, session: SessionDep,
                  loop: LoopDep, form: CheckedForm) -> Response:
    row = invite(loop, session, theme_id, pseudonym, _kind(form_text(form, "kind")), current.actor)
    commit_or_503(session)  # the row first: nobody is ever invited without one
    sent = send_invitation(loop, row.id, current.actor)
    if sent.state == SENT:
        return _back(theme_id, f"Invitation posted in {sent.channel}.")
    return _back(theme_id, f"The invitation was not posted ({sent.state}): {sent.last_error or 'see the table'}")


@router.post("/themes/{theme_id}/champions/{pseudonym}/answer")
def answer_action(theme_id: ThemeIdPath, pseudonym: PseudonymPath, current: EditorUser, session: SessionDep,
                  form: CheckedForm) -> Response:
    answer = form_text(form, "answer")
    record_answer(session, theme_id, pseudonym, answer, current.actor)
    return _back(theme_id, "Consent recorded." if answer == "accepted" else "Refusal recorded.")
