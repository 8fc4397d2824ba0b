"""A re-clustering leaves no item out: what the clustering could not place joins its nearest theme with its
low score, so the triage lists it as "unsure" (core/themes/build.py::_place_left_overs)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from clustering.incremental import JOIN_FLOOR
from core.loop import FeedbackLoop
from core.models import FeedbackItem, Theme, ThemeMembership
from core.themes.build import recluster
from core.themes.suggestions import decide_suggestions
from core.themes.triage import triage_queue
from tests.support.loops import make_loop
from tests.support.themes import CHECKOUT, LOGIN, build_themes

# Far from both groups (the clustering leaves them out), two of them sharing a word with one group.
STRAYS = ["till", "login", "weather forecast for the garden party"]


def themes_by_item(loop: FeedbackLoop) -> dict[str, tuple[str, float | None]]:
    with loop.session() as session:
        rows = session.execute(select(FeedbackItem.text_redacted, Theme.label, ThemeMembership.score)
                               .join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)
                               .join(Theme, Theme.id == ThemeMembership.theme_id))
        return {text: (label, score) for text, label, score in rows}


def test_items_far_from_every_theme_join_the_nearest_as_unsure(tmp_path: Path) -> None:
    plain = make_loop(f"sqlite:///{tmp_path / 'plain.db'}")
    loop = make_loop(f"sqlite:///{tmp_path / 'strays.db'}")
    try:
        build_themes(plain, CHECKOUT + LOGIN)
        build_themes(loop, CHECKOUT + LOGIN + STRAYS)
        placed = themes_by_item(loop)
        assert set(placed) == set(CHECKOUT + LOGIN + STRAYS)  # every item is in a theme
        assert placed["till"][0] == placed[CHECKOUT[0]][0]
        assert placed["login"][0] == placed[LOGIN[0]][0]
        for stray in STRAYS:
            assert (placed[stray][1] or 1.0) < JOIN_FLOOR  # with its low score...
        with loop.session() as session:
            unsure = {entry.label for entry in triage_queue(session) if entry.kind == "unsure"}
            assert unsure == set(STRAYS)  # ...offered to a person, and nothing is left "unplaced"
            assert not [entry for entry in triage_queue(session) if entry.kind == "unplaced"]
            report = recluster(loop, session)
            assert (report.placed_far, report.unthemed) == (3, 0)
        # The themes' names, centres and quotes come from the clustering alone: the strays change none of them.
        with plain.session() as session, loop.session() as other:
            described = select(Theme.label, Theme.keywords, Theme.quotes, Theme.centroid).order_by(Theme.label)
            assert list(session.execute(described)) == list(other.execute(described))
    finally:
        plain.close()
        loop.close()


def test_a_stray_rejected_for_its_nearest_theme_goes_to_the_next(tmp_path: Path) -> None:
    loop = make_loop(f"sqlite:///{tmp_path / 'strays.db'}")
    try:
        build_themes(loop, CHECKOUT + LOGIN + STRAYS)
        with loop.session() as session:
            stray = session.scalars(select(FeedbackItem.id).where(FeedbackItem.text_redacted == "till")).one()
            nearest = session.scalars(select(ThemeMembership.theme_id).where(ThemeMembership.item_id == stray)).one()
            decide_suggestions(loop, session, nearest, [], [stray], "user:pm@example.com")
        build_themes(loop)
        placed = themes_by_item(loop)
        assert placed["till"][0] == placed[LOGIN[0]][0] != placed[CHECKOUT[0]][0]
    finally:
        loop.close()
