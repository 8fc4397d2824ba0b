"""The triage queue a PM works down each morning, and the counts the navigation shows.

Four kinds of entry, most urgent first:

- ``spike``: a theme whose last hour is well above what its own past week predicts (the Poisson z-score
  of core/themes/signals.py, at or above ``SPIKE_Z``).
- ``new``: a theme nobody has looked at yet (status ``new``), newest first: emerging themes.
- ``unassigned``: an active theme with no owner, so no ticket can go anywhere.
- ``unsure``: items the clustering placed with little confidence: further from their theme's centre
  than an item may be to join a theme as it arrives (``JOIN_FLOOR``), least confident first. Keeping one
  where it is pins it there; moving it is done from its theme's page.
- ``unplaced``: items in no theme yet: arrived since the last re-clustering and far from every theme
  (a re-clustering places even those, as ``unsure``: core/themes/build.py), which a person may put
  somewhere or leave for the next re-clustering.

An entry leaves the queue by being acted on: accepting a new theme sets it to ``triaged``, assigning
gives it an owner, ignoring sets ``ignored``, merging moves it into another theme.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clustering.incremental import JOIN_FLOOR
from core.community.item_metadata import not_a_staff_answer
from core.models import Delivery, FeedbackItem, Theme, ThemeMembership, User
from core.themes.signals import spike_scores
from core.types import ROUTABLE_STATUSES, MembershipSource

SPIKE_Z = 3.0
MIN_SPIKE_ITEMS = 3  # three items in an hour can be a spike for a quiet theme; one or two are chance


@dataclass(frozen=True)
class TriageEntry:
    kind: str  # spike | new | unassigned | unsure | unplaced
    theme_id: int | None
    label: str
    volume: int
    detail: str
    item_id: int | None = None


def _spikes(session: Session, now: datetime) -> list[tuple[int, int, float]]:
    """(theme id, items in the last hour, z) for themes spiking now, strongest first."""
    found = [(theme_id, recent, score) for theme_id, (recent, score)
             in spike_scores(session, MIN_SPIKE_ITEMS, now).items() if score >= SPIKE_Z]
    return sorted(found, key=lambda row: -row[2])


def _volumes(session: Session, theme_ids: list[int]) -> dict[int, int]:
    if not theme_ids:
        return {}
    return dict(session.execute(select(ThemeMembership.theme_id, func.count())
                                .where(ThemeMembership.theme_id.in_(theme_ids))
                                .group_by(ThemeMembership.theme_id)).all())


def triage_queue(session: Session, now: datetime | None = None, item_limit: int = 50) -> list[TriageEntry]:
    """Every entry of the queue, in the order a PM should work it."""
    moment = now or datetime.now(UTC)
    active = Theme.status.in_(ROUTABLE_STATUSES)
    entries: list[TriageEntry] = []
    spikes = _spikes(session, moment)
    labels = dict(session.execute(select(Theme.id, Theme.label).where(
        Theme.id.in_([row[0] for row in spikes]), active)).all()) if spikes else {}
    for theme_id, recent, score in spikes:
        if theme_id in labels:
            entries.append(TriageEntry("spike", theme_id, labels[theme_id], recent,
                                       f"{recent} items in the last hour (z = {score:.1f})"))
    new = list(session.execute(select(Theme.id, Theme.label, Theme.created_at)
                               .where(Theme.status == "new").order_by(Theme.created_at.desc(), Theme.id.desc())))
    unassigned = list(session.execute(select(Theme.id, Theme.label).where(active, Theme.status != "new",
                                                                          Theme.owner_id.is_(None))
                                      .order_by(Theme.id)))
    volumes = _volumes(session, [row[0] for row in new] + [row[0] for row in unassigned])
    for theme_id, label, created in new:
        entries.append(TriageEntry("new", theme_id, label, volumes.get(theme_id, 0),
                                   f"found {created:%Y-%m-%d}"))
    for theme_id, label in unassigned:
        entries.append(TriageEntry("unassigned", theme_id, label, volumes.get(theme_id, 0), "no owner"))
    for item_id, theme_id, label, text, similarity in session.execute(
            select(FeedbackItem.id, Theme.id, Theme.label, FeedbackItem.text_redacted, ThemeMembership.score)
            .join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)
            .join(Theme, Theme.id == ThemeMembership.theme_id)
            .where(ThemeMembership.source == MembershipSource.MACHINE, ThemeMembership.score < JOIN_FLOOR, active)
            .order_by(ThemeMembership.score, FeedbackItem.id).limit(item_limit)):
        entries.append(TriageEntry("unsure", theme_id, text[:160], 1,
                                   f"in “{label}”, similarity {similarity or 0.0:.2f} to its centre", item_id=item_id))
    for item_id, text in session.execute(
            select(FeedbackItem.id, FeedbackItem.text_redacted)
            .outerjoin(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)
            # Staff answers are in no theme by design (core.community.item_metadata): nothing to place.
            .where(ThemeMembership.item_id.is_(None), FeedbackItem.embedding.is_not(None), not_a_staff_answer(session))
            .order_by(FeedbackItem.created_at.desc()).limit(item_limit)):
        entries.append(TriageEntry("unplaced", None, text[:160], 1, "in no theme", item_id=item_id))
    return entries


def nav_counts(session: Session, user: User, now: datetime | None = None) -> dict[str, int]:
    """The numbers beside "Triage" and "Inbox": cheap grouped counts, run on every page."""
    moment = now or datetime.now(UTC)
    active = Theme.status.in_(ROUTABLE_STATUSES)
    new = int(session.scalar(select(func.count()).select_from(Theme).where(Theme.status == "new")) or 0)
    unassigned = int(session.scalar(select(func.count()).select_from(Theme).where(
        active, Theme.status != "new", Theme.owner_id.is_(None))) or 0)
    # An owner's open tickets: inbox deliveries whose theme still needs work.
    inbox_query = (select(func.count()).select_from(Delivery).join(Theme, Theme.id == Delivery.theme_id)
                   .where(Delivery.target_type == "inbox", Theme.status.in_(ROUTABLE_STATUSES)))
    if user.role == "owner" and user.owner_id is not None:
        inbox_query = inbox_query.where(Delivery.owner_id == user.owner_id)
    return {"triage": new + unassigned + len(_spikes(session, moment)),
            "inbox": int(session.scalar(inbox_query) or 0)}
