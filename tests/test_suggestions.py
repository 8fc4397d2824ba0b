"""Suggestions after a move: the ranking (clustering/suggest.py, synthetic vectors) and the workspace's side
(core/themes/suggestions.py): accepted suggestions are moved and audited, rejected ones are kept out of
their theme by every later clustering."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from clustering.suggest import CONFIDENT_MARGIN, SCORERS, rank_like_moved
from core.errors import InvalidInput, NotFound
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import AuditEntry, FeedbackItem, SuggestionDecision, ThemeMembership
from core.themes.incremental import assign_new_items
from core.themes.review import merge_themes, split_theme
from core.themes.suggestions import decide_suggestions, forbidden_themes, rank_for_move, suggest_for_move
from core.types import ItemDraft, MembershipSource
from tests.support.themes import build_themes

# ---- the ranking, on synthetic vectors -------------------------------------------------------------------


def blobs(seed: int = 0, dims: int = 32, spread: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    """Two groups of 20 around two random directions (rows 0-19: group A, rows 20-39: group B)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, dims))
    points = np.vstack([centres[0] + spread * rng.normal(size=(20, dims)),
                        centres[1] + spread * rng.normal(size=(20, dims))])
    return points / np.linalg.norm(points, axis=1, keepdims=True), np.repeat([0, 1], 20)


@pytest.mark.parametrize("scorer", sorted(SCORERS))
def test_every_scorer_ranks_the_moved_items_group_first(scorer: str) -> None:
    points, groups = blobs()
    ranking = rank_like_moved(points[2:], points[:2], scorer=scorer)
    assert set(groups[2:][ranking.top(18)].tolist()) == {0}
    assert sorted(ranking.order.tolist()) == list(range(38))


def test_the_confident_count_covers_the_look_alikes_and_nothing_else() -> None:
    points, groups = blobs()
    ranking = rank_like_moved(points[2:], points[:2])
    assert 12 <= ranking.confident <= 18
    assert set(groups[2:][ranking.top(ranking.confident)].tolist()) == {0}


def test_a_pure_theme_has_few_confident_look_alikes() -> None:
    rng = np.random.default_rng(3)
    points = rng.normal(size=(1, 32)) + 0.35 * rng.normal(size=(40, 32))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    assert rank_like_moved(points[2:], points[:2]).confident <= 4  # nothing tells these items apart


def test_rejected_rows_are_never_suggested_and_push_their_look_alikes_down() -> None:
    points, _ = blobs(seed=1)
    remaining = np.vstack([points[2:], points[5] + 0.01, points[5] + 0.02])  # rows 38, 39: near-copies of row 3
    remaining /= np.linalg.norm(remaining, axis=1, keepdims=True)
    before = rank_like_moved(remaining, points[:2])
    after = rank_like_moved(remaining, points[:2], rejected=[3, 38])
    assert 3 not in after.order.tolist() and 38 not in after.order.tolist()
    assert after.scores[3] == -np.inf and len(after.order) == len(remaining) - 2
    assert after.order.tolist().index(39) > before.order.tolist().index(39)


def test_the_target_theme_decides_between_two_readings_of_the_moved_item() -> None:
    points, groups = blobs(seed=2)
    between = (points[0] + points[20]) / np.linalg.norm(points[0] + points[20])  # as much A as B
    towards_b = rank_like_moved(points[1:], between[None, :], target=points[21:30])
    towards_a = rank_like_moved(points[1:], between[None, :], target=points[1:10])
    assert set(groups[1:][towards_b.top(5)].tolist()) == {1}
    assert set(groups[1:][towards_a.top(5)].tolist()) == {0}


def test_the_ranking_is_deterministic_and_refuses_nonsense() -> None:
    points, _ = blobs(seed=4)
    first, second = rank_like_moved(points[2:], points[:2]), rank_like_moved(points[2:], points[:2])
    assert first.order.tolist() == second.order.tolist() and first.confident == second.confident
    assert CONFIDENT_MARGIN > 0
    empty = rank_like_moved(np.zeros((0, 32)), points[:1])
    assert empty.top(10) == [] and empty.confident == 0
    with pytest.raises(ValueError, match="at least one moved"):
        rank_like_moved(points, np.zeros((0, 32)))
    with pytest.raises(ValueError, match="unknown scorer"):
        rank_like_moved(points, points[:1], scorer="nope")


# ---- the workspace side, with the bag-of-words embedder of tests/support/loops.py ------------------------

# One theme mixing two kinds of declined card payments (at the till, online), and a theme of app crashes.
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "morning", "evening", "night")
PHONES = ("iphone", "android", "tablet", "pixel", "galaxy", "ipad", "oneplus", "xiaomi", "motorola", "nokia")
TILL = [f"card payment declined at the shop till cash {word}" for word in DAYS]
ONLINE = [f"card payment declined at the shop online web {word}" for word in PHONES]
CRASH = [f"mobile app crashes on the login screen after update {number}" for number in range(10)]


def ids_of(session: Session) -> dict[str, int]:
    return {external_id: item_id for external_id, item_id in session.execute(
        select(FeedbackItem.external_id, FeedbackItem.id))}


def theme_of(session: Session, item_id: int) -> int | None:
    membership = session.get(ThemeMembership, item_id)
    return membership.theme_id if membership is not None else None


def mixed_theme_split(loop: FeedbackLoop) -> tuple[int, int, dict[str, int]]:
    """(the mixed theme, the theme a person split two "till" items into, {external id: item id})."""
    with loop.session() as session:
        ingest(loop, session, [ItemDraft(text=text, external_id=f"{kind}-{index}")
                               for kind, texts in (("till", TILL), ("online", ONLINE), ("crash", CRASH))
                               for index, text in enumerate(texts)])
    build_themes(loop)
    with loop.session() as session:
        ids = ids_of(session)
        mixed = theme_of(session, ids["till-0"])
        assert mixed is not None and theme_of(session, ids["online-0"]) == mixed  # the clustering mixed them
        target = split_theme(loop, session, mixed, [ids["till-0"], ids["till-1"]], "Declined at the till",
                             "user:pm@example.com").id
    return mixed, target, ids


def test_suggestions_after_a_split_are_the_moved_items_look_alikes(any_loop: FeedbackLoop) -> None:
    mixed, target, ids = mixed_theme_split(any_loop)
    till = {ids[f"till-{index}"] for index in range(2, 10)}
    with any_loop.session() as session:
        found = rank_for_move(any_loop, session, mixed, [ids["till-0"], ids["till-1"]], target, limit=10)
        assert found.target_theme_id == target and len(found.suggestions) == 10
        assert {suggestion.item_id for suggestion in found.suggestions[:8]} == till
        assert [s.score for s in found.suggestions] == sorted((s.score for s in found.suggestions), reverse=True)
        assert 1 <= found.look_alikes <= 8  # only "till" items are announced as looking like these
        assert all(s.confident == (rank < found.look_alikes) for rank, s in enumerate(found.suggestions))
        assert found.suggestions[0].text_redacted.startswith("card payment declined at the shop till cash")
        assert len(suggest_for_move(any_loop, session, mixed, [ids["till-0"]], target, limit=3)) == 3


def test_accepting_moves_and_audits_rejecting_is_kept_and_decided_items_are_not_offered_again(
        any_loop: FeedbackLoop) -> None:
    mixed, target, ids = mixed_theme_split(any_loop)
    accepted, rejected = [ids["till-2"], ids["till-3"]], [ids["till-4"]]
    with any_loop.session() as session:
        decisions = decide_suggestions(any_loop, session, target, accepted, rejected, "user:pm@example.com")
        assert [(d.item_id, d.accepted) for d in decisions] == [(ids["till-2"], True), (ids["till-3"], True),
                                                                (ids["till-4"], False)]
    with any_loop.session() as session:
        for item_id in accepted:
            membership = session.get(ThemeMembership, item_id)
            assert membership is not None and membership.theme_id == target
            assert membership.source == MembershipSource.HUMAN
        assert theme_of(session, ids["till-4"]) == mixed  # rejecting moves nothing
        moves = list(session.scalars(select(AuditEntry).where(AuditEntry.action == "move").order_by(AuditEntry.id)))
        assert [(entry.details["item"], entry.details["suggested"], entry.actor) for entry in moves] == [
            (ids["till-2"], True, "user:pm@example.com"), (ids["till-3"], True, "user:pm@example.com")]
        assert all(entry.details["from"] == mixed and entry.details["to"] == target for entry in moves)
        reject = session.scalars(select(AuditEntry).where(AuditEntry.action == "reject_suggestion")).one()
        assert reject.entity_id == str(target) and reject.details == {"items": [ids["till-4"]]}
        again = suggest_for_move(any_loop, session, mixed, [ids["till-0"], ids["till-1"]], target)
        assert not {ids["till-2"], ids["till-3"], ids["till-4"]} & {s.item_id for s in again}
        assert forbidden_themes(session) == {ids["till-4"]: {target}}
    with any_loop.session() as session:  # a person changes their mind: the answer is replaced, not added
        decide_suggestions(any_loop, session, target, [ids["till-4"]], [], "user:pm@example.com")
    with any_loop.session() as session:
        decision = session.scalars(select(SuggestionDecision).where(SuggestionDecision.item_id == ids["till-4"])).one()
        assert decision.accepted and theme_of(session, ids["till-4"]) == target
        assert forbidden_themes(session) == {}


def test_a_rejected_item_is_kept_out_of_its_theme_by_reclustering(any_loop: FeedbackLoop) -> None:
    mixed, target, ids = mixed_theme_split(any_loop)
    with any_loop.session() as session:
        decide_suggestions(any_loop, session, target, [], [ids["till-4"]], "user:pm@example.com")
    build_themes(any_loop)
    with any_loop.session() as session:
        # The other "till" items follow the split (clustering/steering.py): so would the rejected one.
        assert {theme_of(session, ids[f"till-{index}"]) for index in (2, 3, 5, 6, 7, 8, 9)} == {target}
        assert theme_of(session, ids["till-4"]) not in {target, None}
        assert theme_of(session, ids["online-0"]) == theme_of(session, ids["till-4"])
    with any_loop.session() as session:  # without the decision the same re-clustering puts it there
        session.execute(delete(SuggestionDecision))
    build_themes(any_loop)
    with any_loop.session() as session:
        assert theme_of(session, ids["till-4"]) == target


def test_a_rejection_holds_for_the_theme_it_was_merged_into(any_loop: FeedbackLoop) -> None:
    mixed, target, ids = mixed_theme_split(any_loop)
    with any_loop.session() as session:
        decide_suggestions(any_loop, session, target, [], [ids["till-4"]], "user:pm@example.com")
        crash = theme_of(session, ids["crash-0"])
        assert crash is not None
        merge_themes(any_loop, session, target, crash, "user:pm@example.com")
        assert forbidden_themes(session) == {ids["till-4"]: {target, crash}}
    build_themes(any_loop)
    with any_loop.session() as session:
        assert theme_of(session, ids["till-5"]) == crash  # the split's look-alikes follow it into the merge
        assert theme_of(session, ids["till-4"]) not in {target, crash, None}


def test_new_items_do_not_join_a_theme_they_were_rejected_for(any_loop: FeedbackLoop) -> None:
    mixed, target, ids = mixed_theme_split(any_loop)
    copies = ["till card payment declined at the shop cash monday",
              "cash monday card payment declined at the shop till"]
    with any_loop.session() as session:  # the same words as till-0 (placed by a person): near-copies of it
        ingest(any_loop, session, [ItemDraft(text=text, external_id=f"copy-{index}")
                                   for index, text in enumerate(copies)])
        ids = ids_of(session)
        decide_suggestions(any_loop, session, target, [], [ids["copy-0"]], "user:pm@example.com")
    with any_loop.session() as session:
        assign_new_items(any_loop, session)
    with any_loop.session() as session:
        assert theme_of(session, ids["copy-1"]) == target  # a near-copy of a placed item goes where it went
        assert theme_of(session, ids["copy-0"]) != target


def test_wrong_requests_are_refused(loop: FeedbackLoop) -> None:
    mixed, target, ids = mixed_theme_split(loop)
    with loop.session() as session:
        with pytest.raises(InvalidInput, match="at least one moved"):
            suggest_for_move(loop, session, mixed, [], target)
        with pytest.raises(InvalidInput, match="limit"):
            suggest_for_move(loop, session, mixed, [ids["till-0"]], target, limit=0)
        with pytest.raises(InvalidInput, match="another theme"):
            suggest_for_move(loop, session, mixed, [ids["till-0"]], mixed)
        with pytest.raises(NotFound):
            suggest_for_move(loop, session, 999, [ids["till-0"]], target)
        with pytest.raises(NotFound):
            suggest_for_move(loop, session, mixed, [999_999], target)
        with pytest.raises(InvalidInput, match="both accepted and rejected"):
            decide_suggestions(loop, session, target, [ids["till-2"]], [ids["till-2"]], "user:pm@example.com")
        with pytest.raises(InvalidInput, match="at least one"):
            decide_suggestions(loop, session, target, [], [], "user:pm@example.com")
        with pytest.raises(NotFound):
            decide_suggestions(loop, session, 999, [ids["till-2"]], [], "user:pm@example.com")
        with pytest.raises(NotFound):
            decide_suggestions(loop, session, target, [999_999], [], "user:pm@example.com")


def test_items_a_person_placed_in_the_source_theme_are_not_suggested(loop: FeedbackLoop) -> None:
    mixed, target, ids = mixed_theme_split(loop)
    with loop.session() as session:
        membership = session.get(ThemeMembership, ids["till-2"])
        assert membership is not None
        membership.source = MembershipSource.HUMAN  # pinned where it is
    with loop.session() as session:
        offered = {s.item_id for s in suggest_for_move(loop, session, mixed, [ids["till-0"], ids["till-1"]], target)}
        assert ids["till-2"] not in offered and ids["till-3"] in offered
