"""Suggestions that learn from people: after a move, the items most like the moved ones, judged by a person.

After a person moves or splits items out of a theme, the theme page offers the source theme's remaining
items that look like them ("14 more look like these: move them too?"; the ranking is
clustering/suggest.py). The person accepts or rejects each suggestion, and both answers are kept as
``SuggestionDecision`` rows: accepted items are moved by hand (a human membership, which re-clustering
never changes), rejected ones are cannot-link constraints: no later clustering puts that item in that theme
or in the theme it was merged into (``forbidden_themes``, read by core/themes/build.py and
core/themes/incremental.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from clustering.suggest import rank_like_moved
from core.audit import record
from core.errors import InvalidInput, NotFound
from core.loop import FeedbackLoop
from core.models import AuditEntry, FeedbackItem, SuggestionDecision, ThemeMembership
from core.themes.review import move_item
from core.themes.views import final_theme, get_theme
from core.types import MembershipSource


@dataclass(frozen=True)
class Suggestion:
    """A remaining item of the source theme that looks like the moved ones; ``confident`` when it is one of
    the ``look_alikes`` the page announces."""

    item_id: int
    text_redacted: str
    score: float
    confident: bool = False


@dataclass(frozen=True)
class MoveSuggestions:
    """The suggestions after a move: the best ``limit`` of them, best first, and how many of the source
    theme's remaining items confidently look like the moved ones (may be more than are listed)."""

    source_theme_id: int
    target_theme_id: int
    look_alikes: int
    suggestions: list[Suggestion]


def _vectors(session: Session, item_ids: Iterable[int]) -> dict[int, np.ndarray]:
    """{item id: embedding} for the items that have one (decoded as core/themes/build.py stores them)."""
    wanted = sorted(set(item_ids))
    if not wanted:
        return {}
    rows = session.execute(select(FeedbackItem.id, FeedbackItem.embedding)
                           .where(FeedbackItem.id.in_(wanted), FeedbackItem.embedding.is_not(None))).all()
    return {item_id: np.frombuffer(blob or b"", dtype=np.float32) for item_id, blob in rows}


def _decided(session: Session, theme_id: int) -> dict[int, bool]:
    """{item id: accepted?} for the suggestions into this theme a person already answered."""
    return {item_id: accepted for item_id, accepted in session.execute(
        select(SuggestionDecision.item_id, SuggestionDecision.accepted)
        .where(SuggestionDecision.theme_id == theme_id))}


def _check_known(session: Session, item_ids: set[int]) -> None:
    known = set(session.scalars(select(FeedbackItem.id).where(FeedbackItem.id.in_(item_ids))))
    if item_ids - known:
        raise NotFound(f"no item with id {min(item_ids - known)}")


def _of_size(vectors: dict[int, np.ndarray], item_ids: Iterable[int], dims: int) -> list[int]:
    """The items (in the given order) with an embedding of ``dims`` numbers: the moved items' embedder's."""
    return [item_id for item_id in item_ids if item_id in vectors and len(vectors[item_id]) == dims]


def _stack(vectors: dict[int, np.ndarray], item_ids: list[int]) -> np.ndarray:
    return np.vstack([vectors[item_id] for item_id in item_ids])


def _source_side(session: Session, source_theme_id: int, moved: set[int],
                 decided: dict[int, bool]) -> tuple[list[int], set[int]]:
    """(the source theme's items that may be suggested, in id order; those of them known not to belong with
    the moved ones: rejected for the target, or placed in the source theme by a person)."""
    members = session.execute(select(ThemeMembership.item_id, ThemeMembership.source)
                              .where(ThemeMembership.theme_id == source_theme_id)
                              .order_by(ThemeMembership.item_id)).all()
    candidates = [item_id for item_id, _ in members if item_id not in moved and decided.get(item_id) is not True]
    negative_ids = {item_id for item_id, source in members if source == MembershipSource.HUMAN}
    return candidates, negative_ids | {item_id for item_id, accepted in decided.items() if not accepted}


def rank_for_move(loop: FeedbackLoop, session: Session, source_theme_id: int, moved_item_ids: Collection[int],
                  target_theme_id: int, limit: int = 10) -> MoveSuggestions:
    """The source theme's remaining items most like ``moved_item_ids`` (which a person moved out of it into
    the target theme), best first.

    Left out: the moved items, items already decided for the target theme (a rejected one also steers the
    ranking away from what it looks like), and items a person placed in the source theme (they count as
    belonging there, so they steer it too). Items without an embedding, or with one of another size than
    the moved items' (the embedder changed since), are not ranked.
    """
    if not moved_item_ids:
        raise InvalidInput("suggestions need at least one moved item")
    if limit < 1:
        raise InvalidInput("limit must be at least 1")
    get_theme(session, source_theme_id)
    target = final_theme(session, get_theme(session, target_theme_id).id)
    if target.id == source_theme_id:
        raise InvalidInput("the items were moved out of the source theme: the target must be another theme")
    moved = set(moved_item_ids)
    _check_known(session, moved)
    candidates, negative_ids = _source_side(session, source_theme_id, moved, _decided(session, target.id))
    others_there = set(session.scalars(select(ThemeMembership.item_id)
                                       .where(ThemeMembership.theme_id == target.id))) - moved
    vectors = _vectors(session, moved | set(candidates) | others_there)
    moved_rows = [item_id for item_id in sorted(moved) if item_id in vectors]
    dims = len(vectors[moved_rows[0]]) if moved_rows else 0
    rows = _of_size(vectors, candidates, dims)
    if not moved_rows or not rows:
        return MoveSuggestions(source_theme_id=source_theme_id, target_theme_id=target.id, look_alikes=0,
                               suggestions=[])
    target_rows = _of_size(vectors, sorted(others_there), dims)
    ranking = rank_like_moved(_stack(vectors, rows), _stack(vectors, _of_size(vectors, moved_rows, dims)),
                              target=_stack(vectors, target_rows) if target_rows else None,
                              rejected=[row for row, item_id in enumerate(rows) if item_id in negative_ids])
    chosen = ranking.top(limit)
    texts: dict[int, str] = {item_id: text for item_id, text in session.execute(
        select(FeedbackItem.id, FeedbackItem.text_redacted).where(FeedbackItem.id.in_([rows[row] for row in chosen])))}
    suggestions = [Suggestion(item_id=rows[row], text_redacted=texts[rows[row]], score=float(ranking.scores[row]),
                              confident=rank < ranking.confident) for rank, row in enumerate(chosen)]
    return MoveSuggestions(source_theme_id=source_theme_id, target_theme_id=target.id,
                           look_alikes=ranking.confident, suggestions=suggestions)


def suggest_for_move(loop: FeedbackLoop, session: Session, source_theme_id: int, moved_item_ids: Collection[int],
                     target_theme_id: int, limit: int = 10) -> list[Suggestion]:
    """The best ``limit`` suggestions of ``rank_for_move``, best first."""
    return rank_for_move(loop, session, source_theme_id, moved_item_ids, target_theme_id, limit).suggestions


def decide_suggestions(loop: FeedbackLoop, session: Session, target_theme_id: int, accepted_ids: Collection[int],
                       rejected_ids: Collection[int], actor: str) -> list[SuggestionDecision]:
    """A person's answers to the suggestions into a theme: accepted items are moved there by hand (each an
    audited, undoable "move" marked as a suggestion's), rejected ones are kept out of it by every later
    clustering (one "reject_suggestion" entry). Answering again replaces the earlier answer."""
    accepted, rejected = set(accepted_ids), set(rejected_ids)
    if not accepted and not rejected:
        raise InvalidInput("accept or reject at least one suggestion")
    if accepted & rejected:
        raise InvalidInput(f"item {min(accepted & rejected)} is both accepted and rejected")
    target = final_theme(session, get_theme(session, target_theme_id).id)
    _check_known(session, accepted | rejected)
    existing = {decision.item_id: decision for decision in session.scalars(
        select(SuggestionDecision).where(SuggestionDecision.theme_id == target.id,
                                         SuggestionDecision.item_id.in_(accepted | rejected)))}
    decisions: list[SuggestionDecision] = []
    for item_id in sorted(accepted | rejected):
        decision = existing.get(item_id)
        if decision is None:
            decision = SuggestionDecision(item_id=item_id, theme_id=target.id, accepted=item_id in accepted,
                                          actor=actor)
            session.add(decision)
        decision.accepted, decision.actor = item_id in accepted, actor
        decisions.append(decision)
    for item_id in sorted(accepted):
        move_item(loop, session, item_id, target.id, actor)
        _mark_suggested(session, item_id, target.id)
    if rejected:
        record(session, actor, "reject_suggestion", "theme", target.id, {"items": sorted(rejected)})
    session.flush()
    return decisions


def _mark_suggested(session: Session, item_id: int, theme_id: int) -> None:
    """Note in the "move" entry ``move_item`` just wrote that the move was a suggestion a person accepted."""
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "move", AuditEntry.entity_type == "theme",
                                                     AuditEntry.entity_id == str(theme_id))
                            .order_by(AuditEntry.id.desc()).limit(1)).first()
    if entry is not None and entry.details.get("item") == item_id:
        entry.details = {**entry.details, "suggested": True}  # a new dict: JSON columns see replacement only


def forbidden_themes(session: Session) -> dict[int, set[int]]:
    """{item id: the themes no clustering may put it in}: each rejected suggestion's theme and the theme
    that now stands for it (where a person merged it)."""
    forbidden: dict[int, set[int]] = defaultdict(set)
    for item_id, theme_id in session.execute(select(SuggestionDecision.item_id, SuggestionDecision.theme_id)
                                             .where(SuggestionDecision.accepted.is_(False))):
        forbidden[item_id].update({theme_id, final_theme(session, theme_id).id})
    return dict(forbidden)
