"""Theming between re-clusterings: new items join their theme as they arrive, and new themes emerge
from items that fit none, without re-clustering everything (the worker runs this every round)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from clustering.incremental import JOIN_FLOOR, IncrementalThemer
from clustering.labels import class_tfidf_keywords, readable_title, representative_quotes
from clustering.names import theme_names
from clustering.steering import follow_placed
from core.community.item_metadata import not_a_staff_answer
from core.logs import log_items_after_commit
from core.loop import FeedbackLoop
from core.models import FeedbackItem, Theme, ThemeMembership
from core.themes.build import embed_pending
from core.themes.suggestions import forbidden_themes
from core.themes.views import theme_view
from core.types import INACTIVE_STATUSES, MembershipSource

log = logging.getLogger(__name__)


@dataclass
class AssignReport:
    embedded: int = 0
    joined: int = 0
    new_themes: int = 0
    waiting: int = 0
    looked_at: set[int] = field(default_factory=set)  # the waiting items' ids the pass started from


def assign_new_items(loop: FeedbackLoop, session: Session) -> AssignReport:
    """Embed new items, put each in the nearest theme it is close enough to, and form new themes."""
    embedded = embed_pending(loop, session)
    report = assign_embedded(loop, session)
    report.embedded = embedded
    return report


def assign_embedded(loop: FeedbackLoop, session: Session) -> AssignReport:
    """Theme the items already embedded that have no theme yet; one caller at a time (core/tasks/steps.py
    holds a lock across workers: two callers would form the same new theme twice from one waiting pool)."""
    report = AssignReport()
    waiting = session.execute(_waiting(
        session, FeedbackItem.id, FeedbackItem.text_redacted, FeedbackItem.embedding, FeedbackItem.request_id
    ).order_by(FeedbackItem.id)).all()
    waiting_ids = [item_id for item_id, _, _, _ in waiting]
    report.looked_at = set(waiting_ids)
    if not waiting:
        return report
    texts = {item_id: text for item_id, text, _, _ in waiting}
    vectors = {item_id: np.frombuffer(blob or b"", dtype=np.float32) for item_id, _, blob, _ in waiting}
    dims = len(next(iter(vectors.values())))
    themer = _themer_from_database(loop, session, dims)
    if themer.centroids.shape[1] != dims:  # the embedder changed since the last re-clustering: wait for it
        report.waiting = len(waiting)
        return report
    followers = _near_copies_of_placed(loop, session, vectors, dims)
    forbidden = forbidden_themes(session)
    provisional = _load_provisional(session, themer, texts, vectors, dims)
    placed: dict[int, int] = {}  # item id: theme id, for the log
    for item_id in waiting_ids:  # the provisional ones, in ``vectors`` too, are in a theme already
        theme_id = followers[item_id] if item_id in followers else themer.assign(item_id, vectors[item_id])
        if theme_id in forbidden.get(item_id, ()):
            continue  # a person rejected it for that theme: it waits for the next re-clustering to place it
        if theme_id >= 0:
            session.add(ThemeMembership(item_id=item_id, theme_id=theme_id, source=MembershipSource.MACHINE))
            placed[item_id] = theme_id
            report.joined += 1
    created: dict[int, int] = {}  # the themer's provisional number of a theme made in this pass: its id
    for emerged in themer.emerge(force=True):  # new themes first, then adoptions (some into those new ones)
        if not emerged.new:
            theme_id = created.get(emerged.theme, emerged.theme)
            report.joined += _adopt(session, themer, theme_id, emerged.members, vectors, forbidden, placed)
            continue
        theme = _new_theme(loop, session, themer, emerged.theme, emerged.members, texts, vectors)
        created[emerged.theme] = theme.id
        for item_id in emerged.members:
            if item_id in provisional:  # adopted by a neighbour meanwhile: the new theme takes it over
                provisional[item_id].theme_id, provisional[item_id].adopted = theme.id, False
            else:
                session.add(ThemeMembership(item_id=item_id, theme_id=theme.id, source=MembershipSource.MACHINE))
            placed[item_id] = theme.id
        session.flush()
        log_items_after_commit(session, log, "theme.created", [{"item_id": item_id} for item_id in emerged.members],
                               theme_id=theme.id)
        loop.pm.hook.theme_created(theme=theme_view(session, theme))
        report.new_themes += 1
    report.waiting = len(themer.pool_keys)
    request_ids = {item_id: request_id for item_id, _, _, request_id in waiting}
    themed = [{"item_id": item_id, "request_id": request_ids.get(item_id), "theme_id": theme_id}
              for item_id, theme_id in sorted(placed.items())]
    log_items_after_commit(session, log, "item.themed", themed)
    return report


def _load_provisional(session: Session, themer: IncrementalThemer, texts: dict[int, str],
                      vectors: dict[int, np.ndarray], dims: int) -> dict[int, ThemeMembership]:
    """The most recent adopted memberships into ``themer`` as provisional (oldest first), their texts and
    vectors into ``texts`` and ``vectors``; {item id: membership}."""
    active = set(themer.theme_ids)
    rows = session.execute(
        select(ThemeMembership, FeedbackItem.text_redacted, FeedbackItem.embedding)
        .join(FeedbackItem, FeedbackItem.id == ThemeMembership.item_id)
        .where(ThemeMembership.adopted.is_(True), ThemeMembership.source == MembershipSource.MACHINE)
        .order_by(ThemeMembership.item_id.desc()).limit(themer.provisional_keep)).all()
    provisional: dict[int, ThemeMembership] = {}
    for membership, text, blob in reversed(rows):
        vector = np.frombuffer(blob or b"", dtype=np.float32)
        if len(vector) != dims or membership.theme_id not in active:
            continue
        provisional[membership.item_id] = membership
        texts[membership.item_id], vectors[membership.item_id] = text, vector
        themer.provisional_keys.append(membership.item_id)
        themer.provisional_vectors.append(vector)
        themer.provisional_themes.append(membership.theme_id)
    return provisional


def _adopt(session: Session, themer: IncrementalThemer, theme_id: int, members: list[int],
           vectors: dict[int, np.ndarray], forbidden: dict[int, set[int]], placed: dict[int, int]) -> int:
    """Waiting items adopted by a theme: in it at once, provisionally; how many."""
    centre = themer.centroids[themer.theme_ids.index(theme_id)]
    count = 0
    for item_id in members:
        if theme_id in forbidden.get(item_id, ()):
            continue
        session.add(ThemeMembership(item_id=item_id, theme_id=theme_id, source=MembershipSource.MACHINE,
                                    score=float(vectors[item_id] @ centre), adopted=True))
        placed[item_id] = theme_id
        count += 1
    return count


def waiting_item_ids(session: Session) -> set[int]:
    """The embedded items in no theme: what an assignment pass looks at (and leaves in the pool)."""
    return set(session.scalars(_waiting(session, FeedbackItem.id)))


def _waiting(session: Session, *columns: Any) -> Select[Any]:
    return (select(*columns).outerjoin(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)
            .where(ThemeMembership.item_id.is_(None), FeedbackItem.embedding.is_not(None),
                   not_a_staff_answer(session)))


def _near_copies_of_placed(loop: FeedbackLoop, session: Session, vectors: dict[int, np.ndarray],
                           dims: int) -> dict[int, int]:
    """{item id: theme id} for new items nearly identical to one a person placed: they go where it went."""
    placed = session.execute(
        select(FeedbackItem.embedding, ThemeMembership.theme_id)
        .join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)
        .where(ThemeMembership.source == MembershipSource.HUMAN, FeedbackItem.embedding.is_not(None))
        .order_by(FeedbackItem.id)
    ).all()
    anchors = [(np.frombuffer(blob or b"", dtype=np.float32), theme_id) for blob, theme_id in placed]
    anchors = [(vector, theme_id) for vector, theme_id in anchors if len(vector) == dims]
    if not anchors:
        return {}
    item_ids = list(vectors)
    stacked = np.vstack([vector for vector, _ in anchors] + [vectors[item_id] for item_id in item_ids])
    followed = follow_placed(stacked, {row: theme_id for row, (_, theme_id) in enumerate(anchors)},
                             loop.settings.steer_similarity)
    return {item_ids[row - len(anchors)]: theme_id for row, theme_id in followed.items()}


def _themer_from_database(loop: FeedbackLoop, session: Session, dims: int) -> IncrementalThemer:
    themes = list(session.scalars(
        select(Theme).where(Theme.centroid.is_not(None), Theme.status.not_in(INACTIVE_STATUSES),
                            Theme.merged_into_id.is_(None)).order_by(Theme.id)
    ))
    sizes = {int(theme_id): int(count) for theme_id, count in session.execute(
        select(ThemeMembership.theme_id, func.count()).group_by(ThemeMembership.theme_id))}
    centroids = (np.vstack([np.frombuffer(t.centroid or b"", dtype=np.float32) for t in themes]).copy()
                 if themes else np.zeros((0, dims), dtype=np.float32))
    return IncrementalThemer(
        centroids=centroids,
        sizes=np.asarray([sizes.get(t.id, 1) for t in themes], dtype=np.int64),
        radii=np.asarray([t.radius if t.radius is not None else JOIN_FLOOR for t in themes], dtype=np.float32),
        theme_ids=[t.id for t in themes],
        min_new_theme=loop.settings.min_theme_size,
    )


def _new_theme(loop: FeedbackLoop, session: Session, themer: IncrementalThemer, provisional_id: int,
               members: list[int], texts: dict[int, str], vectors: dict[int, np.ndarray]) -> Theme:
    """A theme for ``members`` among the waiting items ``texts`` (and their ``vectors``), named like a theme
    of a full clustering (issue 18) and unlike every active theme: its candidates ranked by the loop's
    embedder, one batch of about thirty phrases, the keywords kept beside the name."""
    chosen = set(members)
    # Keywords and names that set these items apart from everything else still waiting.
    member_texts = {texts[m] for m in members}
    others = [item_id for item_id in texts if item_id not in chosen and texts[item_id] not in member_texts]
    order = list(members) + others
    pool_texts = [texts[item_id] for item_id in order] + ([] if others else ["-"])
    labels = np.array([0] * len(members) + [-1] * (len(pool_texts) - len(members)), dtype=np.int64)
    pool_vectors = np.vstack([vectors[item_id] for item_id in order]
                             + ([] if others else [np.zeros_like(vectors[members[0]])]))
    keywords = class_tfidf_keywords(pool_texts, labels).get(0, [])
    quotes = representative_quotes(pool_vectors, list(range(len(members))))
    active = session.scalars(select(Theme.label).where(Theme.status.not_in(INACTIVE_STATUSES),
                                                       Theme.merged_into_id.is_(None))).all()
    name = (theme_names(pool_texts, labels, pool_vectors, loop.embedder, taken_names=active).get(0)
            or readable_title(keywords))
    theme = Theme(label=name, keywords=keywords, status="new",
                  quotes=[pool_texts[i] for i in quotes])
    index = themer.theme_ids.index(provisional_id)
    theme.centroid = themer.centroids[index].tobytes()
    theme.radius = float(themer.radii[index])
    session.add(theme)
    session.flush()
    themer.theme_ids[index] = theme.id  # later emerging themes must not reuse the provisional number
    return theme
