"""Closing the loop: when a theme is done or declined, the people behind its items hear back.

One reply per thread (a forum topic, a GitHub issue) per theme, through the channel the feedback came
from, by an intake plugin's optional ``reply_to_thread`` hook. The text is a template an admin edits
(``$theme``, ``$status``, ``$link``); it names no person and quotes nobody. Threads whose authors were
erased get nothing. A reply is marked "sending" before the call and never re-sent from that state:
telling someone twice is worse than a reply an operator has to check. Where a reply goes, and with which
credentials, is the channel's configuration and the outbound policy (``core.outbound``); a stored item
names only its thread, whoever wrote its metadata.
"""

from __future__ import annotations

from collections import defaultdict
from string import Template
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import Insert as PostgresqlInsert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.audit import cli_actor, record
from core.errors import InvalidInput
from core.loop import FeedbackLoop
from core.models import (
    AuditEntry,
    Channel,
    FeedbackItem,
    ItemTombstone,
    LoopReply,
    Setting,
    Theme,
    ThemeMembership,
)
from core.routing.messages import theme_link
from core.secrets import SecretEnvRefused, named_secret
from core.types import CLOSED_STATUSES, ReplyRequest, StoredItem, ThreadReplies

TEMPLATE_SETTING = "loop_reply_template"
DEFAULT_TEMPLATE = ("Thank you for your feedback. The team has looked at \"$theme\" and marked it $status. "
                    "Details: $link")
STATUS_WORDS = {"done": "as done", "declined": "as declined"}
MAX_ATTEMPTS = 3
# For channel types without a reply capability (the deprecated ``reply_to_thread`` path): metadata keys
# that name a thread, in the order channels are likely to set them.
LEGACY_THREAD_KEYS = ("thread_id", "topic_id", "issue_number", "conversation_id")


class TemplateError(InvalidInput):
    """A reply template that cannot be used."""


def reply_template(session: Session) -> str:
    stored = session.get(Setting, TEMPLATE_SETTING)
    return stored.value if stored is not None else DEFAULT_TEMPLATE


def check_template(text: str) -> str:
    """The template, when it can be stored: not empty, and using only $theme, $status and $link."""
    if not text.strip():
        raise TemplateError("the template must not be empty")
    try:
        Template(text).substitute(theme="t", status="s", link="l")
    except (KeyError, ValueError) as error:
        raise TemplateError(f"the template may use only $theme, $status and $link ({error!s})") from error
    return text


def set_reply_template(session: Session, text: str, actor: str | None = None) -> None:
    """Replace the reply template; audited under ``actor`` (None: the operating-system user)."""
    check_template(text)
    stored = session.get(Setting, TEMPLATE_SETTING)
    record(session, actor or cli_actor(), "set_reply_template", "setting", TEMPLATE_SETTING,
           {"from": stored.value if stored is not None else None, "to": text})
    write_setting(session, TEMPLATE_SETTING, text)


def write_setting(session: Session, key: str, value: str) -> None:
    """Insert or replace one installation setting in one statement (an upsert).

    Reading first and then adding lets two concurrent writers both see no row and both insert; one of
    them then fails on the key's UNIQUE constraint at commit. The session's copy, if it holds one, is
    refreshed from the statement's RETURNING.
    """
    # The two databases feedbackloop runs on; each has its own ON CONFLICT construct.
    statement: PostgresqlInsert | SqliteInsert = (
        postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    )(Setting).values(key=key, value=value)
    upsert = statement.on_conflict_do_update(index_elements=[Setting.key], set_={"value": statement.excluded.value})
    session.scalars(upsert.returning(Setting), execution_options={"populate_existing": True}).one()


def thread_of(item: FeedbackItem, replies: ThreadReplies | None) -> str | None:
    """The thread an item belongs to, as its channel type names it."""
    if replies is not None:
        return replies.thread_of(StoredItem(channel=item.channel, external_id=item.external_id, url=item.url,
                                            metadata=dict(item.metadata_json or {})))
    metadata = item.metadata_json or {}
    for key in LEGACY_THREAD_KEYS:
        if metadata.get(key) not in (None, ""):
            return str(metadata[key])
    return None


def channel_replies(loop: FeedbackLoop, session: Session) -> dict[str, ThreadReplies | None]:
    """Each configured channel's reply capability (None: its type has none)."""
    return {channel.name: getattr(loop.channel_types.get(channel.plugin), "replies", None)
            for channel in session.scalars(select(Channel))}


def erased_pseudonyms(session: Session) -> set[str]:
    """Authors erased on request (``feedbackloop forget``); their items are gone, sightings may not be."""
    return set(session.scalars(select(AuditEntry.entity_id).where(AuditEntry.action == "forget_author")
                               .where(AuditEntry.entity_type == "author")))


def is_erased(item: FeedbackItem, erased: set[str]) -> bool:
    return bool((item.metadata_json or {}).get("author_erased")) or (item.author_pseudonym or "") in erased


def opener_erased(session: Session, channel: str, thread: str, replies: ThreadReplies | None) -> bool:
    """Whether the thread's own opening item was erased (or deleted at the source): then the thread is
    that person's, and replying in it would be writing to them. Only a channel type that names a thread's
    opening item can tell; otherwise only the items' own authors are checked."""
    opener = replies.opener_id(thread) if replies is not None else None
    return opener is not None and session.scalar(
        select(ItemTombstone.id).where(ItemTombstone.channel == channel)
        .where(ItemTombstone.external_id == opener)) is not None


def _plan(loop: FeedbackLoop, session: Session) -> None:
    """Write a pending reply for every thread of every closed theme not yet told (unique per theme)."""
    closed = list(session.scalars(select(Theme).where(Theme.status.in_(CLOSED_STATUSES))))
    erased = erased_pseudonyms(session) if closed else set()
    capabilities = channel_replies(loop, session) if closed else {}
    for theme in closed:
        items = session.scalars(select(FeedbackItem).join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)
                                .where(ThemeMembership.theme_id == theme.id))
        threads: dict[tuple[str, str], list[FeedbackItem]] = defaultdict(list)
        for item in items:
            thread = thread_of(item, capabilities.get(item.channel))
            if thread is not None:
                threads[(item.channel, thread)].append(item)
        known = {(reply.channel, reply.thread_ref) for reply in
                 session.scalars(select(LoopReply).where(LoopReply.theme_id == theme.id))}
        for (channel, thread), thread_items in threads.items():
            if (channel, thread) in known:
                continue
            skip = (any(is_erased(item, erased) for item in thread_items)
                    or opener_erased(session, channel, thread, capabilities.get(channel)))
            session.add(LoopReply(theme_id=theme.id, channel=channel, thread_ref=thread,
                                  state="skipped_erased" if skip else "pending", attempts=0))


def send_loop_replies(loop: FeedbackLoop) -> int:
    """Plan and send closing-the-loop replies; returns how many were posted."""
    with loop.session() as session:
        _plan(loop, session)
    with loop.session() as session:
        due = [reply.id for reply in session.scalars(
            select(LoopReply).where(LoopReply.state.in_(("pending", "failed")))
            .where(LoopReply.attempts < MAX_ATTEMPTS).order_by(LoopReply.id))]
    posted = 0
    for reply_id in due:
        claimed = _claim(loop, reply_id)
        if claimed is None:
            continue
        request, replies = claimed
        try:
            answer: Any = (replies.post(request) if replies is not None
                           else loop.pm.hook.reply_to_thread(request=request))
            outcome, error = ("sent", None) if answer is not None else ("unsupported", None)
        except Exception as failure:  # recorded on the reply; tried again up to MAX_ATTEMPTS
            outcome, error = "failed", f"{type(failure).__name__}: {failure}"[:2000]
        with loop.session() as session:
            reply = session.get(LoopReply, reply_id)
            if reply is not None:
                reply.state, reply.last_error = outcome, error
        posted += outcome == "sent"
    return posted


def _claim(loop: FeedbackLoop, reply_id: int) -> tuple[ReplyRequest, ThreadReplies | None] | None:
    with loop.session() as session:
        reply = session.get(LoopReply, reply_id)
        if reply is None:
            return None
        theme = session.get(Theme, reply.theme_id)
        channel = session.scalar(select(Channel).where(Channel.name == reply.channel))
        if theme is None or channel is None:
            reply.state, reply.last_error = "unsupported", "the channel is not configured any more"
            return None
        sample = session.scalar(
            select(FeedbackItem).join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)
            .where(ThemeMembership.theme_id == theme.id).where(FeedbackItem.channel == reply.channel)
            .order_by(FeedbackItem.id))
        text = Template(reply_template(session)).safe_substitute(
            theme=theme.label, status=STATUS_WORDS.get(theme.status, theme.status),
            link=theme_link(loop.settings.public_url, theme.id))
        reply.attempts += 1
        reply.state = "sending"
        request = ReplyRequest(
            channel_name=channel.name, channel_type=channel.plugin, options=dict(channel.options or {}),
            secret=_channel_secret(channel, loop), thread_id=reply.thread_ref, url=sample.url if sample else None,
            metadata=dict(sample.metadata_json or {}) if sample else {}, text=text, settings=loop.settings)
        return request, getattr(loop.channel_types.get(channel.plugin), "replies", None)


def _channel_secret(channel: Channel, loop: FeedbackLoop) -> str | None:
    """The channel's webhook secret for a legacy ``reply_to_thread`` plugin, if its variable may be read at all
    (a reply's destination and credentials come from the channel's options, never from the stored item)."""
    try:
        return named_secret(channel.secret_env, loop.settings, f"channel {channel.name!r}")
    except SecretEnvRefused:
        return None
