"""Co-creation: a product manager invites a theme's champion to a beta, an interview or a design review.

The invitation is posted in a thread the author wrote in within the theme (one they opened, when there
is one), through the channel type's ``replies`` capability and nothing else (core/types.py
``ThreadReplies``); a channel type without it cannot carry an invitation, and the invitation is refused.
Its text is an admin-editable template (``$theme``, ``$kind``, ``$link``) that mentions nobody.

Nobody is invited twice for a theme: the invitation's row is unique per (theme, author) and is written
before anything is sent, then marked "sending" before the call; a row in "sending" is never sent again
(as with closing-the-loop replies, telling someone twice is worse than a row a person has to check). A
send that failed may be tried again, up to MAX_ATTEMPTS, in the same row. Erased authors are checked
when the invitation is made and again when it is sent, and their rows are scrubbed
(``core.community.models_champions.forget_invitations``). The author answers in the thread; a person
records that answer as consent (accepted / declined), with who recorded it and when. Every step (the
invitation, each send's outcome, each answer and change of answer) is in the audit log, on the theme,
naming the invitation's id and never the pseudonym.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from string import Template

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.audit import cli_actor, record
from core.clock import utcnow
from core.community.champions import DEFAULT_LIMIT, Champion, champion_of, rank_authors
from core.community.champions import member_posts as theme_posts
from core.community.models_champions import (
    ANSWERS,
    ERASED,
    FAILED,
    PENDING,
    SENDING,
    SENT,
    ChampionInvitation,
    forget_invitations,
)
from core.errors import Conflict, InvalidInput, NotFound
from core.loop import FeedbackLoop
from core.models import Channel, FeedbackItem, Setting, Theme, ThemeMembership
from core.routing.messages import theme_link
from core.routing.replies import (
    TemplateError,
    channel_replies,
    erased_pseudonyms,
    is_erased,
    opener_erased,
    thread_of,
    write_setting,
)
from core.themes.views import final_theme, get_theme
from core.types import ReplyRequest, ThreadReplies

TEMPLATE_SETTING = "champion_invitation_template"
DEFAULT_TEMPLATE = ("Thank you for all you have shared about \"$theme\". The product team is looking for a few people "
                    "to help shape it: would you like to take part in our $kind? Just answer here, yes or no. "
                    "More about it: $link")
# What $kind says for each kind of co-creation.
KINDS = {"beta": "beta", "interview": "interview", "design_review": "design review"}
MAX_ATTEMPTS = 3
# "@name" as forums and GitHub read it (an address such as a@b.org is not a mention).
MENTION = re.compile(r"(?<![\w.])@[\w-]")


def invitation_template(session: Session) -> str:
    stored = session.get(Setting, TEMPLATE_SETTING)
    return stored.value if stored is not None else DEFAULT_TEMPLATE


def check_invitation_template(text: str) -> str:
    """The template, when it can be stored: not empty, only $theme, $kind and $link, and no @mention."""
    if not text.strip():
        raise TemplateError("the template must not be empty")
    try:
        Template(text).substitute(theme="t", kind="k", link="l")
    except (KeyError, ValueError) as error:
        raise TemplateError(f"the template may use only $theme, $kind and $link ({error!s})") from error
    if MENTION.search(text):
        raise TemplateError("the template must not mention anyone (@name): an invitation is for its reader only")
    return text


def set_invitation_template(session: Session, text: str, actor: str | None = None) -> None:
    """Replace the invitation template; audited under ``actor`` (None: the operating-system user)."""
    check_invitation_template(text)
    stored = session.get(Setting, TEMPLATE_SETTING)
    record(session, actor or cli_actor(), "set_invitation_template", "setting", TEMPLATE_SETTING,
           {"from": stored.value if stored is not None else None, "to": text})
    write_setting(session, TEMPLATE_SETTING, text)


def invitation_text(template: str, theme_label: str, kind: str, link: str) -> str:
    # A theme's name comes from what people wrote: an "@" in it must not turn into a mention.
    return Template(template).safe_substitute(theme=theme_label.replace("@", ""), kind=KINDS.get(kind, kind),
                                              link=link)


@dataclass(frozen=True)
class Destination:
    """The thread an invitation goes to."""

    channel: str
    thread: str


def _authors_items(session: Session, theme_id: int, pseudonym: str) -> list[FeedbackItem]:
    return list(session.scalars(
        select(FeedbackItem).join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)
        .where(ThemeMembership.theme_id == theme_id, FeedbackItem.author_pseudonym == pseudonym)
        .order_by(FeedbackItem.created_at, FeedbackItem.id)))


def _opened(item: FeedbackItem, thread: str, replies: ThreadReplies) -> bool:
    return (item.metadata_json or {}).get("opens_thread") is True or replies.opener_id(thread) == item.external_id


def find_destination(loop: FeedbackLoop, session: Session, theme_id: int, pseudonym: str,
                     capabilities: dict[str, ThreadReplies | None] | None = None) -> Destination:
    """Where an invitation to this author would go: a thread they opened first, then their earliest;
    Conflict when none of their threads can take one."""
    capabilities = channel_replies(loop, session) if capabilities is None else capabilities
    erased = erased_pseudonyms(session)
    candidates: list[tuple[bool, Destination]] = []
    for item in _authors_items(session, theme_id, pseudonym):
        replies = capabilities.get(item.channel)
        thread = thread_of(item, replies) if replies is not None else None
        if replies is None or thread is None or is_erased(item, erased):
            continue
        if not opener_erased(session, item.channel, thread, replies):
            candidates.append((not _opened(item, thread, replies), Destination(item.channel, thread)))
    if not candidates:
        raise Conflict("no thread of this author's in the theme can take an invitation: their channels cannot answer "
                       "in threads (the channel type has no replies capability), or the thread's opener was erased")
    return min(candidates, key=lambda candidate: candidate[0])[1]


def merged_family(session: Session, theme_id: int) -> set[int]:
    """The theme and every theme a person merged into it (directly or through others)."""
    family = {theme_id}
    while True:
        more = set(session.scalars(select(Theme.id).where(Theme.merged_into_id.in_(family)))) - family
        if not more:
            return family
        family |= more


def _invitation(session: Session, theme_ids: set[int], pseudonym: str) -> ChampionInvitation | None:
    return session.scalar(select(ChampionInvitation).where(ChampionInvitation.theme_id.in_(sorted(theme_ids)),
                                                           ChampionInvitation.author_pseudonym == pseudonym)
                          .order_by(ChampionInvitation.id).limit(1))


def _refuse_erased(session: Session, pseudonym: str) -> None:
    if pseudonym in erased_pseudonyms(session):
        raise Conflict("this author was erased on request: they are never invited, and nothing of theirs is kept")


def _refuse_repeat(row: ChampionInvitation) -> None:
    """Conflict unless ``row`` failed to be posted and may be tried again."""
    if row.state != FAILED or row.attempts >= MAX_ATTEMPTS:
        tried = f", tried {row.attempts} times" if row.state == FAILED else ""
        raise Conflict(f"this author was invited for this theme already ({row.created_at:%Y-%m-%d}, {row.state}"
                       f"{tried}); nobody is invited twice")


@dataclass(frozen=True)
class InvitationPlan:
    """What inviting would do: the theme, the invitation tried again (if any), and where it would go."""

    theme: Theme
    existing: ChampionInvitation | None
    destination: Destination


def plan_invitation(loop: FeedbackLoop, session: Session, theme_id: int, pseudonym: str,
                    kind: str) -> InvitationPlan:
    """Every check an invitation passes, without writing: a 4xx naming the reason when it may not go."""
    theme = get_theme(session, theme_id)
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}")
    if theme.merged_into_id is not None:
        raise Conflict(f"theme {theme.id} was merged into theme {theme.merged_into_id}: invite its champions there")
    _refuse_erased(session, pseudonym)
    # An invitation made on a theme merged into this one counts here too: still nobody is asked twice.
    existing = _invitation(session, merged_family(session, theme.id), pseudonym)
    if existing is not None:
        _refuse_repeat(existing)
    elif champion_of(session, theme.id, pseudonym) is None:
        raise NotFound(f"no author {pseudonym} among theme {theme.id}'s possible champions "
                       "(staff and erased authors never are)")
    target = find_destination(loop, session, theme.id, pseudonym)
    return InvitationPlan(theme, existing, target)


def invite(loop: FeedbackLoop, session: Session, theme_id: int, pseudonym: str, kind: str,
           actor: str) -> ChampionInvitation:
    """Write the invitation (pending) for ``send_invitation``; a failed one is readied to be tried again
    (in its own row, with its first kind)."""
    plan = plan_invitation(loop, session, theme_id, pseudonym, kind)
    target, row = plan.destination, plan.existing
    if row is not None:
        row.channel, row.thread_ref, row.state = target.channel, target.thread, PENDING
        record(session, actor, "retry_champion_invitation", "theme", row.theme_id,
               {"invitation": row.id, "attempts": row.attempts, "channel": target.channel})
        return row
    row = ChampionInvitation(theme_id=plan.theme.id, author_pseudonym=pseudonym, kind=kind, channel=target.channel,
                             thread_ref=target.thread, state=PENDING, attempts=0, invited_by=actor)
    session.add(row)
    try:
        session.flush()
    except IntegrityError as error:  # another request invited them in the meantime
        raise Conflict("this author has just been invited for this theme; nobody is invited twice") from error
    record(session, actor, "invite_champion", "theme", plan.theme.id,
           {"invitation": row.id, "kind": kind, "channel": target.channel})
    return row


def _not_sendable(loop: FeedbackLoop, session: Session, row: ChampionInvitation
                  ) -> tuple[str, str | None, Channel | None, ThreadReplies | None]:
    """Why the row cannot be sent now (state, error), or ("", None) with its channel and capability."""
    if row.author_pseudonym is None or row.author_pseudonym in erased_pseudonyms(session):
        return ERASED, None, None, None
    channel = session.scalar(select(Channel).where(Channel.name == row.channel))
    replies = getattr(loop.channel_types.get(channel.plugin), "replies", None) if channel is not None else None
    if channel is None or replies is None or row.thread_ref is None:
        return FAILED, "the channel is not configured any more, or its type cannot answer in threads", None, None
    if opener_erased(session, channel.name, row.thread_ref, replies):
        return FAILED, "the thread's opening post was erased since; invite again to pick another thread", None, None
    return "", None, channel, replies


def _claim(loop: FeedbackLoop, invitation_id: int, actor: str) -> tuple[ReplyRequest, ThreadReplies] | None:
    """Mark the invitation "sending" (only from pending or failed: never twice) and build its request."""
    with loop.session() as session:
        row = session.get(ChampionInvitation, invitation_id)
        if row is None or row.state not in (PENDING, FAILED) or row.attempts >= MAX_ATTEMPTS:
            return None
        refused, error, channel, replies = _not_sendable(loop, session, row)
        if refused:
            if refused == ERASED:
                forget_invitations(session, {row.author_pseudonym} if row.author_pseudonym else set())
            row.state, row.last_error = refused, error
            record(session, actor, "send_champion_invitation", "theme", row.theme_id,
                   {"invitation": row.id, "state": refused, **({"error": error} if error else {})})
            return None
        assert channel is not None and replies is not None and row.thread_ref is not None
        claimed = session.execute(
            update(ChampionInvitation).where(ChampionInvitation.id == row.id,
                                             ChampionInvitation.state.in_((PENDING, FAILED)),
                                             ChampionInvitation.attempts < MAX_ATTEMPTS)
            .values(state=SENDING, attempts=ChampionInvitation.attempts + 1)
            .execution_options(synchronize_session=False))
        if getattr(claimed, "rowcount", 0) != 1:  # another request claimed it first
            return None
        return _request(loop, session, row, channel, replies), replies


def _request(loop: FeedbackLoop, session: Session, row: ChampionInvitation, channel: Channel,
             replies: ThreadReplies) -> ReplyRequest:
    """The reply request of an invitation, with the author's own post in that thread as its context."""
    assert row.thread_ref is not None
    theme = final_theme(session, row.theme_id)  # merged since: the theme that now stands for it
    context = next((item for item in session.scalars(
        select(FeedbackItem).where(FeedbackItem.channel == channel.name,
                                   FeedbackItem.author_pseudonym == row.author_pseudonym).order_by(FeedbackItem.id))
                    if thread_of(item, replies) == row.thread_ref), None)
    text = invitation_text(invitation_template(session), theme.label, row.kind,
                           theme_link(loop.settings.public_url, theme.id))
    return ReplyRequest(channel_name=channel.name, channel_type=channel.plugin, options=dict(channel.options or {}),
                        secret=None, thread_id=row.thread_ref, url=context.url if context else None,
                        metadata=dict(context.metadata_json or {}) if context else {}, text=text,
                        settings=loop.settings)


def send_invitation(loop: FeedbackLoop, invitation_id: int, actor: str) -> ChampionInvitation:
    """Post a pending (or failed) invitation through its channel's replies capability; returns the row after."""
    claimed = _claim(loop, invitation_id, actor)
    reference: str | None = None
    if claimed is not None:
        request, replies = claimed
        try:
            reference, outcome, error = str(replies.post(request))[:256], SENT, None
        except Exception as failure:  # any plugin's failure: recorded on the row, tried again only by a person
            outcome, error = FAILED, f"{type(failure).__name__}: {failure}"[:2000]
        with loop.session() as session:
            row = session.get(ChampionInvitation, invitation_id)
            if row is not None:
                row.state, row.last_error, row.reply_ref = outcome, error, reference
                row.sent_at = utcnow() if outcome == SENT else None
                record(session, actor, "send_champion_invitation", "theme", row.theme_id,
                       {"invitation": row.id, "state": outcome, **({"error": error[:300]} if error else {})})
    with loop.session() as session:
        found = session.get(ChampionInvitation, invitation_id)
        if found is None:
            raise NotFound(f"no invitation with id {invitation_id}")
        return found


def record_answer(session: Session, theme_id: int, pseudonym: str, answer: str, actor: str) -> ChampionInvitation:
    """Record the author's answer to the invitation as consent (accepted) or refusal (declined)."""
    get_theme(session, theme_id)
    if answer not in ANSWERS:
        raise InvalidInput(f"answer must be one of {', '.join(ANSWERS)}")
    _refuse_erased(session, pseudonym)
    row = _invitation(session, merged_family(session, theme_id), pseudonym)
    if row is None:
        raise NotFound(f"author {pseudonym} has no invitation for theme {theme_id}")
    if row.state not in (SENT, SENDING):
        raise Conflict(f"the invitation was not posted (it is {row.state}): there is no answer to record")
    if row.answer != answer:
        record(session, actor, "record_champion_answer", "theme", theme_id,
               {"invitation": row.id, "from": row.answer, "to": answer})
        row.answer, row.answered_by, row.answered_at = answer, actor, utcnow()
    return row


@dataclass(frozen=True)
class ChampionLine:
    """A champion as the workspace and the API show them: their part, their invitation, whether one can go."""

    champion: Champion
    invitation: ChampionInvitation | None
    can_invite: bool
    why_not: str | None


def theme_invitations(session: Session, theme_id: int) -> list[ChampionInvitation]:
    """The theme's invitations (and those of themes merged into it), oldest first; rows of authors erased
    since are scrubbed first."""
    family = sorted(merged_family(session, theme_id))
    invited = set(session.scalars(select(ChampionInvitation.author_pseudonym).where(
        ChampionInvitation.theme_id.in_(family), ChampionInvitation.author_pseudonym.is_not(None))))
    forget_invitations(session, {p for p in invited if p is not None} & erased_pseudonyms(session))
    return list(session.scalars(select(ChampionInvitation).where(ChampionInvitation.theme_id.in_(family))
                                .order_by(ChampionInvitation.id)))


def champion_lines(loop: FeedbackLoop, session: Session, theme_id: int,
                   limit: int = DEFAULT_LIMIT) -> tuple[list[ChampionLine], list[ChampionInvitation]]:
    """The theme's top champions with their invitations, and all of the theme's invitations."""
    get_theme(session, theme_id)
    invitations = theme_invitations(session, theme_id)
    by_author = {row.author_pseudonym: row for row in invitations if row.author_pseudonym is not None}
    capabilities = channel_replies(loop, session)
    lines = []
    for champion in rank_authors(theme_posts(session, theme_id), erased_pseudonyms(session))[:max(0, limit)]:
        row = by_author.get(champion.pseudonym)
        why_not = None
        if row is not None and (row.state != FAILED or row.attempts >= MAX_ATTEMPTS):
            why_not = "invited already"
        else:
            try:
                find_destination(loop, session, theme_id, champion.pseudonym, capabilities)
            except Conflict as refused:
                why_not = refused.message
        lines.append(ChampionLine(champion, row, why_not is None, why_not))
    return lines, invitations
