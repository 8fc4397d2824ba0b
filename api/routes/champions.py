"""A theme's champions over HTTP: who leads its conversation, inviting them to co-create, recording their
answer, and the invitation's template. Reads need a read key, the rest a pm key, as theme edits do
(core/community/champions.py ranks, core/community/invitations.py invites and records)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from api.deps import LoopDep, PmKey, ReadKey, SessionDep, commit_or_503
from api.errors import API_ERRORS, error_responses
from api.inputs import ThemeIdPath, UtcDatetime
from core.community.champions import DEFAULT_LIMIT, MAX_LIMIT, Champion
from core.community.invitations import (
    champion_lines,
    invitation_template,
    invite,
    record_answer,
    send_invitation,
    set_invitation_template,
)
from core.community.models_champions import ChampionInvitation

router = APIRouter(prefix="/api/v1", tags=["champions"], responses=error_responses(*API_ERRORS))
WRITE_ERRORS = error_responses(404, 409, 503)
PseudonymPath = Annotated[str, Path(pattern="^[0-9a-f]{16,64}$", description="An author's pseudonym.")]
Kind = Literal["beta", "interview", "design_review"]


class InvitationPublic(BaseModel):
    id: int
    author: str | None = Field(description="Pseudonym; null once the author was erased.")
    kind: str
    channel: str | None
    state: str = Field(description="pending, sending, sent, failed or erased.")
    attempts: int
    last_error: str | None
    invited_by: str
    created_at: UtcDatetime
    sent_at: UtcDatetime | None
    answer: str | None = Field(description="accepted (consent), declined, or null: no answer recorded.")
    answered_by: str | None
    answered_at: UtcDatetime | None


class ChampionPublic(BaseModel):
    author: str = Field(description="Pseudonym.")
    posts: int
    threads_opened: int
    replies_received: int
    first_post_at: UtcDatetime
    channels: list[str]
    can_invite: bool
    why_not: str | None = Field(description="Why no invitation can be sent now, when it cannot.")
    invitation: InvitationPublic | None


class ThemeChampions(BaseModel):
    theme_id: int
    champions: list[ChampionPublic] = Field(description="Most posts, replies received and earliest post, combined "
                                                        "as a rank sum (core/community/champions.py).")
    invitations: list[InvitationPublic] = Field(description="All of the theme's invitations, oldest first.")


class InvitationBody(BaseModel):
    kind: Kind = Field(description="What the author is invited to.")


class AnswerBody(BaseModel):
    answer: Literal["accepted", "declined"] = Field(description="accepted records consent; declined, a refusal.")


class InvitationTemplateBody(BaseModel):
    template: str = Field(min_length=1, max_length=5_000, description="Text with $theme, $kind and $link; no @name.")


def public_invitation(row: ChampionInvitation) -> InvitationPublic:
    return InvitationPublic(id=row.id, author=row.author_pseudonym, kind=row.kind, channel=row.channel,
                            state=row.state, attempts=row.attempts, last_error=row.last_error,
                            invited_by=row.invited_by, created_at=row.created_at, sent_at=row.sent_at,
                            answer=row.answer, answered_by=row.answered_by, answered_at=row.answered_at)


def public_champion(champion: Champion, invitation: ChampionInvitation | None, can_invite: bool,
                    why_not: str | None) -> ChampionPublic:
    return ChampionPublic(author=champion.pseudonym, posts=champion.posts, threads_opened=champion.threads_opened,
                          replies_received=champion.replies_received, first_post_at=champion.first_post_at,
                          channels=list(champion.channels), can_invite=can_invite, why_not=why_not,
                          invitation=public_invitation(invitation) if invitation is not None else None)


@router.get("/themes/{theme_id}/champions", operation_id="list_champions", responses=error_responses(404))
def list_champions(theme_id: ThemeIdPath, loop: LoopDep, session: SessionDep, _caller: ReadKey,
                   limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT) -> ThemeChampions:
    """The authors who lead the theme's conversation, by pseudonym, with their invitations."""
    lines, invitations = champion_lines(loop, session, theme_id, limit)
    return ThemeChampions(theme_id=theme_id, invitations=[public_invitation(row) for row in invitations],
                          champions=[public_champion(line.champion, line.invitation, line.can_invite, line.why_not)
                                     for line in lines])


@router.post("/themes/{theme_id}/champions/{pseudonym}/invitations", status_code=201,
             operation_id="invite_champion", responses=WRITE_ERRORS)
def post_invitation(theme_id: ThemeIdPath, pseudonym: PseudonymPath, body: InvitationBody,
                    loop: LoopDep, session: SessionDep, caller: PmKey) -> InvitationPublic:
    """Invite the author, once, in one of their threads through the channel's replies capability.

    The invitation is stored before it is posted and answered with the outcome: ``sent``, or ``failed``
    with the error (posting it again here tries again, a few times at most). 409 when the author was
    invited for this theme already, was erased, or wrote only through channels that cannot reply."""
    row = invite(loop, session, theme_id, pseudonym, body.kind, caller.actor)
    commit_or_503(session)  # stored before anything is posted: never invited without a row saying so
    return public_invitation(send_invitation(loop, row.id, caller.actor))


@router.post("/themes/{theme_id}/champions/{pseudonym}/invitations/answer", operation_id="answer_invitation",
             responses=WRITE_ERRORS)
def post_answer(theme_id: ThemeIdPath, pseudonym: PseudonymPath, body: AnswerBody,
                session: SessionDep, caller: PmKey) -> InvitationPublic:
    """Record the author's answer (read in the thread): accepted is consent, declined a refusal; a
    change of answer is recorded and audited too."""
    return public_invitation(record_answer(session, theme_id, pseudonym, body.answer, caller.actor))


@router.get("/champions/invitation-template", operation_id="get_invitation_template")
def get_invitation_template(session: SessionDep, _caller: ReadKey) -> dict[str, str]:
    return {"template": invitation_template(session)}


@router.put("/champions/invitation-template", operation_id="set_invitation_template", responses=error_responses(503))
def put_invitation_template(body: InvitationTemplateBody, session: SessionDep, caller: PmKey) -> dict[str, str]:
    """The text of co-creation invitations."""
    set_invitation_template(session, body.template, actor=caller.actor)
    return {"template": body.template}
