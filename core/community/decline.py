"""Decline alerts, a spike notice's mirror image: when a channel's weekly posts fall several weeks in a row,
tell the channel's owner, once per episode.

Checked by every worker round over complete ISO weeks only (the current week is still filling up).
A channel declines when its community posts (core.community.vitality: staff posts apart) fell
``decline_weeks`` weeks in a row (each week fewer than the one before; default 3) from a week with at
least ``decline_min_posts`` posts (default 10), so a dead-quiet channel does not alert every week. That
is an episode; it ends at the first week whose posts rose above the week before, and a fall after that is
a new episode with a notice of its own.

The notice goes to the channel option ``owner`` through the target the rules file gives that owner (its
first ``[[spike]]``, else its first ``[[rule]]``, else ``[default]`` when it names them; else the built-in
inbox), or without the option to the rules file's ``[default]`` owner and target. As for spikes, the
episode is written before the call and claimed by one worker, so a crash can lose a notice but never
repeat one; a failed call is tried again next round, up to ``MAX_NOTICE_ATTEMPTS``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.clock import aware, utcnow
from core.community.decline_options import LOOKBACK_WEEKS, DeclineSettings, decline_settings
from core.community.models_vitality import DeclineEpisode
from core.community.vitality import WEEK, week_start, weekly_posts
from core.errors import InvalidInput
from core.loop import FeedbackLoop
from core.models import Channel
from core.routing.rules import Rule, SpikeRule, load_rules
from core.routing.spikes import deliver_notice
from core.types import DeliveryRequest, ThemeView

MAX_NOTICE_ATTEMPTS = 5
log = logging.getLogger(__name__)


def falling_streak(posts: Sequence[int]) -> int:
    """How many weeks in a row, ending with the last, had fewer posts than the week before."""
    streak = 0
    while streak < len(posts) - 1 and posts[-1 - streak] < posts[-2 - streak]:
        streak += 1
    return streak


def _recovery_week(posts: Sequence[int], weeks: Sequence[datetime], detected: datetime) -> datetime | None:
    for index in range(1, len(posts)):
        if weeks[index] > detected and posts[index] > posts[index - 1]:
            return weeks[index]
    return None


def open_episode(session: Session, channel: str) -> DeclineEpisode | None:
    return session.scalar(select(DeclineEpisode).where(DeclineEpisode.channel == channel,
                                                       DeclineEpisode.ended_week.is_(None))
                          .order_by(DeclineEpisode.id.desc()).limit(1))


def evaluate(session: Session, channel: str, settings: DeclineSettings, now: datetime) -> DeclineEpisode | None:
    """Close the channel's episode if its posts recovered; open one if they fell long enough (returned)."""
    first = week_start(now) - WEEK * LOOKBACK_WEEKS
    posts, _, authors = weekly_posts(session, channel, first, LOOKBACK_WEEKS)
    weeks = [first + WEEK * index for index in range(LOOKBACK_WEEKS)]
    current = open_episode(session, channel)
    if current is not None:
        recovered = _recovery_week(posts, weeks, aware(current.detected_week) or current.detected_week)
        if recovered is None:
            return None
        current.ended_week, current.ended_at = recovered, utcnow()
    streak = falling_streak(posts)
    peak = len(posts) - 1 - streak
    if settings.weeks == 0 or streak < settings.weeks or posts[peak] < settings.min_posts:
        return None
    if session.scalar(select(DeclineEpisode.id).where(DeclineEpisode.channel == channel,
                                                      DeclineEpisode.peak_week == weeks[peak])) is not None:
        return None
    episode = DeclineEpisode(channel=channel, peak_week=weeks[peak], detected_week=weeks[-1],
                             weekly_posts=posts[peak:], notice_state="pending", attempts=0,
                             details={"active_authors": authors[peak:], "decline_weeks": settings.weeks,
                                      "min_posts": settings.min_posts})
    session.add(episode)
    session.flush()
    return episode


def check_declines(loop: FeedbackLoop, now: datetime | None = None) -> int:
    """Open and close decline episodes of every configured channel, and send their notices; returns how many."""
    moment = now or utcnow()
    with loop.session() as session:
        channels = list(session.execute(select(Channel.name, Channel.options).order_by(Channel.name)))
    for name, options in channels:
        try:
            settings = decline_settings(options or {})
        except InvalidInput as error:  # each round: debug only; the channel's page shows the problem
            log.debug("channel %r: decline alerts off: %s", name, error.message)
            continue
        try:
            with loop.session() as session:
                evaluate(session, name, settings, moment)
        except IntegrityError:
            continue  # another worker opened the same episode at the same time
    with loop.session() as session:
        due = list(session.scalars(select(DeclineEpisode.id).where(
            DeclineEpisode.ended_week.is_(None), DeclineEpisode.notice_state.in_(("pending", "failed")),
            DeclineEpisode.attempts < MAX_NOTICE_ATTEMPTS).order_by(DeclineEpisode.id)))
    return sum(1 for episode_id in due if _notify(loop, episode_id))


def _route(loop: FeedbackLoop, owner: str | None) -> tuple[str, str, dict[str, Any]] | None:
    """(owner, target type, target options) for a notice, from the channel's owner and the rules file."""
    rules = load_rules(loop.settings.rules_file, loop.settings) if loop.settings.rules_file is not None else None
    if owner is None:
        default = rules.default if rules is not None else None
        return (default.owner, default.target, dict(default.target_options)) if default is not None else None
    if rules is not None:
        entries: list[Rule | SpikeRule] = [*rules.spikes, *rules.rules, *([rules.default] if rules.default else [])]
        for entry in entries:
            if entry.owner == owner:
                return owner, entry.target, dict(entry.target_options)
    return owner, "inbox", {}


def decline_message(episode: DeclineEpisode, public_url: str) -> tuple[str, str, str]:
    """(title, body, link) of the notice: the weekly posts of the fall, and the channel's page."""
    link = f"{public_url.rstrip('/')}/channels/{episode.channel}"
    falls = len(episode.weekly_posts) - 1
    peak = aware(episode.peak_week) or episode.peak_week
    authors = list(episode.details.get("active_authors") or [])
    body = (f"Posts per week in channel {episode.channel!r} fell {falls} weeks in a row: "
            f"{', '.join(str(n) for n in episode.weekly_posts)} (weeks from {peak:%Y-%m-%d}).\n"
            + (f"Active authors: {', '.join(str(n) for n in authors)}.\n" if authors else "")
            + f"\n{link}")
    return f"[feedbackloop] Activity falling: {episode.channel} ({falls} weeks in a row)", body, link


def _claim(session: Session, episode_id: int) -> DeclineEpisode | None:
    claimed = session.execute(
        update(DeclineEpisode).where(DeclineEpisode.id == episode_id,
                                     DeclineEpisode.notice_state.in_(("pending", "failed")))
        .values(notice_state="sending", attempts=DeclineEpisode.attempts + 1))
    return session.get(DeclineEpisode, episode_id) if getattr(claimed, "rowcount", 0) == 1 else None


def _request(loop: FeedbackLoop, session: Session, episode: DeclineEpisode) -> tuple[DeliveryRequest, str] | None:
    options = session.scalar(select(Channel.options).where(Channel.name == episode.channel)) or {}
    route = _route(loop, decline_settings(options).owner)
    if route is None:
        episode.notice_state, episode.last_error = "unrouted", "no channel option 'owner' and no [default] owner"
        return None
    owner, target_type, target_options = route
    episode.owner, episode.target_type = owner, target_type
    title, body, link = decline_message(episode, loop.settings.public_url)
    latest = episode.weekly_posts[-1] if episode.weekly_posts else 0
    # Targets take a theme; a channel's notice stands in one that names the channel and its last week.
    view = ThemeView(id=0, label=f"Channel {episode.channel}", keywords=[], status="new", volume=latest,
                     share_of_voice=0.0, mean_sentiment=0.0, kinds={}, channels={episode.channel: latest},
                     quotes=[], owner=owner)
    return DeliveryRequest(theme=view, owner=owner, options=target_options, title=title, body=body, link=link,
                           idempotency_key=f"decline-{episode.id}", settings=loop.settings), target_type


def _notify(loop: FeedbackLoop, episode_id: int) -> bool:
    error: str | None = None
    with loop.session() as session:
        episode = _claim(session, episode_id)
        if episode is None:
            return False  # another worker has it
        try:
            prepared = _request(loop, session, episode)
        except Exception as failure:  # a broken rules file or option: recorded, tried again next round
            prepared, error = None, f"{type(failure).__name__}: {failure}"[:2000]
            episode.notice_state, episode.last_error = "failed", error
    if prepared is None:
        return False
    request, target_type = prepared
    error = deliver_notice(loop, request, target_type)  # recorded on the episode; the next round tries again
    with loop.session() as session:
        episode = session.get(DeclineEpisode, episode_id)
        if episode is not None:
            episode.notice_state, episode.last_error = ("failed", error) if error else ("sent", None)
    return error is None


def recent_episodes(session: Session, channel: str, limit: int = 10) -> list[DeclineEpisode]:
    """The channel's decline episodes, newest first."""
    return list(session.scalars(select(DeclineEpisode).where(DeclineEpisode.channel == channel)
                                .order_by(DeclineEpisode.id.desc()).limit(limit)))


def channel_decline_settings(session: Session, channel: str) -> DeclineSettings | None:
    """The configured channel's decline options; None for a channel not configured or with a bad option."""
    found = session.scalar(select(Channel).where(Channel.name == channel))
    if found is None:
        return None
    try:
        return decline_settings(found.options or {})
    except InvalidInput:
        return None


def decline_option_problem(session: Session, channel: str) -> str | None:
    """Why the configured channel's decline options cannot be used (alerts are off until fixed), if so."""
    options = session.scalar(select(Channel.options).where(Channel.name == channel))
    try:
        decline_settings(options or {})
    except InvalidInput as error:
        return error.message
    return None
