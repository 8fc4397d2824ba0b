"""Polled channels: fetch new posts from sources that send no webhooks (feeds, app stores, Reddit, Mastodon).

A round for one channel: claim it (a compare-and-set on ``next_poll_at`` that also schedules it as if
the round will fail, so a worker killed mid-round still backs off and two workers never poll one
channel at once), then page by page: the type's ``fetch`` with the stored cursor, outside any
transaction (no lock is held while the network answers), then ONE transaction that stores the page's
items (``core.intake.ingest``, the webhooks' de-duplication), applies its deletions and stores its
cursor. A poller killed between pages starts again from the last committed cursor: it asks the source
again for at most the page it had not committed, and stores nothing twice. A page is only committed
over the cursor it was fetched with, so a second poller (a manual ``channels poll`` beside the worker)
cannot move the cursor backwards.

Pacing: ``interval_s`` (the channel's option, else the poller's default) after a round; failures back
off exponentially with jitter (``core.routing.outbox.backoff_delay``, as deliveries do); a source that
answers "wait" (``PollThrottled``: 429 with ``Retry-After``) is left alone exactly that long, capped.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.clock import aware, utcnow
from core.errors import FeedbackloopError, NotFound
from core.intake.impact import apply_impact
from core.intake.ingest import MAX_TEXT_CHARS, delete_items, ingest
from core.intake.poll_options import poll_interval
from core.intake.poll_state import ChannelPollState
from core.loop import FeedbackLoop
from core.models import Channel
from core.routing.outbox import DeliveryPolicy, backoff_delay
from core.secrets import named_secret
from core.types import ChannelPoller, ItemDraft, PollPage, PollRequest, PollThrottled

# Two pollers racing on one item's unique key: the loser's page is retried and then finds the winner's row.
STORE_ATTEMPTS = 3
TRUE_WORDS = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class PollPolicy:
    """How hard to poll: pages per round, backoff after failures, and the longest wait a source may ask."""

    max_pages_per_round: int = 10
    backoff_base_s: float = 60.0
    backoff_cap_s: float = 6 * 3600.0
    max_retry_after_s: float = 24 * 3600.0


@dataclass
class PollReport:
    """What a poll did, summed over channels; ``errors`` names each channel that failed and why."""

    channels: int = 0
    pages: int = 0
    created: int = 0
    updated: int = 0
    duplicates: int = 0
    deleted: int = 0
    skipped: int = 0
    failed: int = 0
    throttled: int = 0
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Claim:
    channel_id: int
    name: str
    options: dict[str, Any]
    secret_env: str | None
    poller: ChannelPoller
    cursor: dict[str, Any]
    failures: int


def _delay_after_failures(policy: PollPolicy, failures: int, rng: random.Random) -> float:
    return backoff_delay(DeliveryPolicy(backoff_base_s=policy.backoff_base_s, backoff_cap_s=policy.backoff_cap_s),
                         failures, rng)


def polled_channels(loop: FeedbackLoop, session: Session) -> list[Channel]:
    """Configured channels whose type polls, each with a state row (made here when missing)."""
    channels = [channel for channel in session.scalars(select(Channel).order_by(Channel.name))
                if (channel_type := loop.channel_types.get(channel.plugin)) is not None and channel_type.poll]
    known = set(session.scalars(select(ChannelPollState.channel_id)))
    for channel in channels:
        if channel.id not in known:
            session.add(ChannelPollState(channel_id=channel.id, cursor={}, consecutive_failures=0, items_total=0))
    return channels


def _ensure_states(loop: FeedbackLoop) -> list[tuple[int, str]]:
    try:
        with loop.session() as session:
            return [(channel.id, channel.name) for channel in polled_channels(loop, session)]
    except IntegrityError:  # another worker made the same rows first
        with loop.session() as session:
            return [(channel.id, channel.name) for channel in polled_channels(loop, session)]


def poll_due(loop: FeedbackLoop, policy: PollPolicy | None = None, rng: random.Random | None = None,
             now: datetime | None = None) -> PollReport:
    """One round for every polled channel that is due (the worker calls this each round)."""
    policy, rng, report = policy or PollPolicy(), rng or random.Random(), PollReport()
    now = now or utcnow()
    channel_ids = dict(_ensure_states(loop))
    with loop.session() as session:
        due = list(session.scalars(select(ChannelPollState.channel_id).where(
            ChannelPollState.channel_id.in_(channel_ids),
            or_(ChannelPollState.next_poll_at.is_(None), ChannelPollState.next_poll_at <= now))))
    for channel_id in sorted(due, key=lambda known: channel_ids[known]):
        _poll_round(loop, channel_id, policy, rng, report, force=False, now=now)
    return report


def poll_channel(loop: FeedbackLoop, channel_name: str, policy: PollPolicy | None = None,
                 rng: random.Random | None = None) -> PollReport:
    """Poll one channel now, whenever it was due (still never while its source asked us to wait)."""
    policy, rng, report = policy or PollPolicy(), rng or random.Random(), PollReport()
    with loop.session() as session:
        channel = session.scalar(select(Channel).where(Channel.name == channel_name))
        if channel is None:
            raise NotFound(f"no channel named {channel_name!r}")
        channel_type = loop.channel_types.get(channel.plugin)
        if channel_type is None or channel_type.poll is None:
            raise FeedbackloopError(f"channel {channel_name!r} (type {channel.plugin!r}) is not polled; "
                                    "it receives webhooks")
    channel_id = dict((name, known) for known, name in _ensure_states(loop))[channel_name]
    _poll_round(loop, channel_id, policy, rng, report, force=True, now=utcnow())
    return report


def _claim(loop: FeedbackLoop, channel_id: int, policy: PollPolicy, rng: random.Random, force: bool,
           now: datetime, report: PollReport) -> _Claim | None:
    with loop.session() as session:
        state, channel = session.get(ChannelPollState, channel_id), session.get(Channel, channel_id)
        channel_type = loop.channel_types.get(channel.plugin) if channel is not None else None
        if state is None or channel is None or channel_type is None or channel_type.poll is None:
            return None
        throttled = state.throttled_until is not None and _aware(state.throttled_until) > now
        due = state.next_poll_at is None or _aware(state.next_poll_at) <= now
        if throttled or not (due or force):
            if throttled:
                report.errors[channel.name] = f"the source asked to wait until {state.throttled_until:%H:%M:%S} UTC"
            return None
        # Pessimistic: the round is scheduled as if it fails; compare-and-set so only one poller wins.
        claim_until = now + timedelta(seconds=_delay_after_failures(policy, state.consecutive_failures + 1, rng))
        seen = ChannelPollState.next_poll_at.is_(None) if state.next_poll_at is None else \
            ChannelPollState.next_poll_at == state.next_poll_at
        won = session.execute(update(ChannelPollState).where(ChannelPollState.channel_id == channel_id, seen)
                              .values(next_poll_at=claim_until))
        if not getattr(won, "rowcount", 0):
            return None
        return _Claim(channel_id, channel.name, dict(channel.options or {}), channel.secret_env, channel_type.poll,
                      dict(state.cursor or {}), state.consecutive_failures)


def _aware(moment: datetime) -> datetime:
    return aware(moment) or moment


def _poll_round(loop: FeedbackLoop, channel_id: int, policy: PollPolicy, rng: random.Random, report: PollReport,
                force: bool, now: datetime) -> None:
    claim = _claim(loop, channel_id, policy, rng, force, now, report)
    if claim is None:
        return
    report.channels += 1
    cursor, more = claim.cursor, False
    try:
        interval = poll_interval(claim.options, claim.poller.interval_s)
        secret = _secret(loop, claim)
        for _ in range(policy.max_pages_per_round):
            page = claim.poller.fetch(PollRequest(channel_name=claim.name, options=claim.options, secret=secret,
                                                  cursor=dict(cursor), settings=loop.settings))
            stored = _store_page(loop, claim, cursor, page, report)
            if stored is None:
                return  # another poller moved the cursor meanwhile: its round carries on, not ours
            cursor, more = stored, page.more
            if not more:
                break
    except PollThrottled as error:
        _record_throttle(loop, claim, error, policy, report)
        return
    except Exception as error:  # a source's failure is recorded; it must not stop the other channels
        _record_failure(loop, claim, error, policy, rng, report)
        return
    # Pages left over (the cap per round): due again at once, so the next worker round carries on.
    _record_success(loop, claim, utcnow() + timedelta(seconds=0 if more else interval))


def _secret(loop: FeedbackLoop, claim: _Claim) -> str | None:
    if not claim.secret_env:
        return None
    secret = named_secret(claim.secret_env, loop.settings, f"channel {claim.name!r}")
    if not secret:
        raise FeedbackloopError(f"channel {claim.name!r} reads its secret from ${claim.secret_env}, which is not set")
    return secret


def _prepared(claim: _Claim, page: PollPage, report: PollReport) -> list[ItemDraft]:
    """The page's drafts as a webhook's are prepared: this channel's name, impact, the internal flag; a draft
    that cannot be stored (no text) is skipped, since a source cannot be asked to send it again fixed."""
    internal = str(claim.options.get("internal", "")).strip().lower() in TRUE_WORDS
    drafts = []
    for draft in page.items:
        if not isinstance(draft.text, str) or not draft.text.strip():
            report.skipped += 1
            continue
        draft.text = draft.text[:MAX_TEXT_CHARS]
        draft.channel = claim.name
        if internal:
            draft.metadata["internal"] = True
        drafts.append(draft)
    apply_impact(drafts, claim.options)
    return drafts


def _store_page(loop: FeedbackLoop, claim: _Claim, fetched_with: dict[str, Any], page: PollPage,
                report: PollReport) -> dict[str, Any] | None:
    """Items, deletions and cursor in one transaction: the cursor as stored, or None when the stored cursor
    is no longer the one this page was fetched with."""
    drafts = _prepared(claim, page, report)
    cursor: dict[str, Any] = json.loads(json.dumps(page.cursor))  # as it reads back: compared next page
    part, deleted = None, 0
    for attempt in range(1, STORE_ATTEMPTS + 1):
        try:
            with loop.session() as session:
                state = session.get(ChannelPollState, claim.channel_id, with_for_update=True)
                if state is None or dict(state.cursor or {}) != fetched_with:
                    return None
                part = ingest(loop, session, drafts) if drafts else None
                deleted = delete_items(session, claim.name, page.deleted_ids) if page.deleted_ids else 0
                state.cursor = cursor
                state.last_polled_at = utcnow()
                state.items_total += part.created if part else 0
            break
        except IntegrityError:
            if attempt == STORE_ATTEMPTS:
                raise
    report.pages += 1
    report.deleted += deleted
    if part is not None:
        report.created, report.updated = report.created + part.created, report.updated + part.updated
        report.duplicates += part.duplicates + part.linked
    return cursor


def _record_success(loop: FeedbackLoop, claim: _Claim, next_poll_at: datetime) -> None:
    with loop.session() as session:
        state = session.get(ChannelPollState, claim.channel_id)
        if state is not None:
            state.next_poll_at, state.last_success_at = next_poll_at, utcnow()
            state.consecutive_failures, state.last_error, state.throttled_until = 0, None, None


def _record_throttle(loop: FeedbackLoop, claim: _Claim, error: PollThrottled, policy: PollPolicy,
                     report: PollReport) -> None:
    """Wait exactly as long as the source asked (capped: a broken header must not park a channel for good)."""
    report.throttled += 1
    wait_s = min(max(0.0, float(error.retry_after_s)), policy.max_retry_after_s)
    report.errors[claim.name] = f"throttled for {wait_s:.0f} s: {error.message}"
    with loop.session() as session:
        state = session.get(ChannelPollState, claim.channel_id)
        if state is not None:
            state.throttled_until = state.next_poll_at = utcnow() + timedelta(seconds=wait_s)
            state.last_error = f"throttled: {error.message}"[:2000]


def _record_failure(loop: FeedbackLoop, claim: _Claim, error: Exception, policy: PollPolicy, rng: random.Random,
                    report: PollReport) -> None:
    report.failed += 1
    message = error.message if isinstance(error, FeedbackloopError) else f"{type(error).__name__}: {error}"
    report.errors[claim.name] = message[:2000]
    with loop.session() as session:
        state = session.get(ChannelPollState, claim.channel_id)
        if state is not None:
            state.consecutive_failures += 1
            state.last_error = message[:2000]
            delay = _delay_after_failures(policy, state.consecutive_failures, rng)
            state.next_poll_at = utcnow() + timedelta(seconds=delay)


@dataclass(frozen=True)
class PollStatus:
    """A polled channel as ``channels poll-status`` shows it."""

    name: str
    plugin: str
    next_poll_at: datetime | None
    last_success_at: datetime | None
    consecutive_failures: int
    throttled_until: datetime | None
    last_error: str | None
    items_total: int


def poll_statuses(loop: FeedbackLoop) -> list[PollStatus]:
    """Every polled channel's state, by name."""
    _ensure_states(loop)
    with loop.session() as session:
        rows = session.execute(select(Channel, ChannelPollState).join(
            ChannelPollState, ChannelPollState.channel_id == Channel.id).order_by(Channel.name))
        return [PollStatus(channel.name, channel.plugin, state.next_poll_at, state.last_success_at,
                           state.consecutive_failures, state.throttled_until, state.last_error, state.items_total)
                for channel, state in rows]
