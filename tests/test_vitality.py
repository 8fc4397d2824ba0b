"""Community vitality (issue 16): the figures against a fixture computed by hand, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.community.vitality import channel_vitality, known_channels, posts_trend, require_channel, week_start
from core.errors import InvalidInput, NotFound
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.types import ItemDraft

# Wednesday of ISO week 2026-W48; its Monday is 23 November. With weeks=4 the window is W45 (2 Nov), W46
# (9 Nov), W47 (16 Nov) and W48 (23 Nov, still running).
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SAM = "sam"  # staff


def at(day: int, hour: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


# (external id, author, when, thread, opens_thread, staff). Every post is in channel "forum" unless noted.
POSTS: list[tuple[str, str | None, datetime, str | None, bool, bool]] = [
    ("p0", "alice", at(19, 10, month=10), "t0", True, False),  # W43, before the window: alice is not new later
    # W45
    ("p1", "alice", at(2, 10), "t1", True, False),   # opens t1
    ("p2", "bob", at(3, 9), "t2", True, False),      # opens t2; bob's first post ever here
    ("p3", SAM, at(2, 14), "t1", False, True),       # staff answers t1 4 h after it opened
    ("p4", "bob", at(4, 8), "t1", False, False),     # a community reply
    # W46
    ("p5", "carol", at(9, 12), "t3", True, False),   # opens t3; carol is new
    ("p6", SAM, at(10, 12), "t3", False, True),      # staff answers t3 after 24 h
    ("p7", SAM, at(10, 9), "t2", False, True),       # staff answers t2 (opened in W45) after 7 days = 168 h
    ("p8", "alice", at(11, 10), "t3", False, False),
    ("p9", SAM, at(12, 10), "t4", True, True),       # staff opens t4 (an announcement): no thread counted
    ("p10", None, at(13, 10), None, False, False),   # no author: a post, but nobody's
    # W47
    ("p11", "dave", at(16, 10), "t5", True, False),  # opens t5, never answered by staff; dave is new
    ("p12", SAM, at(17, 8), "t6", False, True),      # a staff post in t6 *before* its opening post
    ("p13", "erin", at(17, 9), "t6", True, False),   # opens t6; erin is new
    ("p14", SAM, at(17, 11), "t6", False, True),     # the first staff post after the opener: 2 h
    # W48 (so far)
    ("p15", "bob", at(23, 10), "t5", False, False),  # bob returns
    ("p16", "bob", at(5, 10, month=12), "t5", False, False),  # stamped after the current week: not counted
]


def add_posts(loop: FeedbackLoop) -> None:
    drafts = [ItemDraft(text=f"community post {external_id} about the forum", channel="forum",
                        external_id=external_id, author=author, created_at=when,
                        metadata={**({"thread": thread} if thread else {}), "opens_thread": opens, "staff": staff})
              for external_id, author, when, thread, opens, staff in POSTS]
    # Another channel: alice's post there changes nothing here, and it says nothing about staff.
    drafts.append(ItemDraft(text="alice elsewhere", channel="survey", external_id="s1", author="alice",
                            created_at=at(3, 10), metadata={"thread": "x", "opens_thread": True}))
    with loop.session() as session:
        ingest(loop, session, drafts)


def figures(week: Any) -> tuple[Any, ...]:
    return (week.iso_week, week.complete, week.posts, week.staff_posts, week.active_authors, week.new_authors,
            week.returning_authors, week.threads_opened, week.threads_staff_answered, week.staff_answer_share,
            week.median_hours_to_staff_answer)


def test_figures_match_the_hand_computed_fixture(any_loop: FeedbackLoop) -> None:
    add_posts(any_loop)
    with any_loop.session() as session:
        vitality = channel_vitality(session, "forum", weeks=4, now=NOW)
    # Per week (community posts leave staff posts apart; new = first community post in "forum" ever):
    # W45: posts p1 p2 p4 = 3; staff p3 = 1; authors alice, bob = 2; new bob = 1 (alice posted in W43), so
    #      returning 1; threads opened t1, t2 = 2, both answered by staff (t1 after 4 h by p3, t2 after 168 h
    #      by p7 in W46): share 2/2 = 1.0, median of [4, 168] = 86.0 h.
    # W46: posts p5 p8 p10 = 3; staff p6 p7 p9 = 3; authors carol, alice = 2 (p10 has none); new carol = 1,
    #      returning 1; threads opened t3 = 1 (t4 was opened by staff), answered after 24 h: 1.0, 24.0 h.
    # W47: posts p11 p13 = 2; staff p12 p14 = 2; authors dave, erin = 2, both new, returning 0; threads t5, t6
    #      = 2; t6 answered by p14 after 2 h (p12 came before the opener), t5 never: 1 of 2 = 0.5, 2.0 h.
    # W48: posts p15 = 1 (p16 is stamped in December); staff 0; authors bob = 1, not new, returning 1; no
    #      thread opened: no share, no median.
    assert [figures(week) for week in vitality.weeks] == [
        ("2026-W45", True, 3, 1, 2, 1, 1, 2, 2, 1.0, 86.0),
        ("2026-W46", True, 3, 3, 2, 1, 1, 1, 1, 1.0, 24.0),
        ("2026-W47", True, 2, 2, 2, 2, 0, 2, 1, 0.5, 2.0),
        ("2026-W48", False, 1, 0, 1, 0, 1, 0, 0, None, None),
    ]
    assert vitality.weeks[0].start == datetime(2026, 11, 2, tzinfo=UTC)
    # The window: community authors alice, bob, carol, dave, erin = 5; threads t1 t2 t3 t5 t6 = 5, staff
    # answered t1 t2 t3 t6 = 4 (0.8); median of [4, 168, 24, 2] = (4 + 24) / 2 = 14.0 h.
    assert vitality.staff_measured
    assert (vitality.active_authors, vitality.threads_opened, vitality.threads_staff_answered) == (5, 5, 4)
    assert vitality.staff_answer_share == pytest.approx(0.8)
    assert vitality.median_hours_to_staff_answer == pytest.approx(14.0)
    # Trend over the complete weeks' posts [3, 3, 2] at x = 0, 1, 2: mean x 1, mean y 8/3; slope =
    # ((-1)(3 - 8/3) + 0 + (1)(2 - 8/3)) / ((-1)^2 + 0 + 1^2) = (-1/3 - 2/3) / 2 = -0.5 posts a week per week;
    # as a share of the mean: -0.5 / (8/3) = -0.1875, beyond -5 %: falling.
    assert vitality.trend.slope == pytest.approx(-0.5)
    assert vitality.trend.change_share == pytest.approx(-0.1875)
    assert (vitality.trend.direction, vitality.trend.weeks_used) == ("falling", 3)


def test_a_channel_that_does_not_say_who_is_staff_reports_no_staff_answers(any_loop: FeedbackLoop) -> None:
    add_posts(any_loop)
    with any_loop.session() as session:
        survey = channel_vitality(session, "survey", weeks=4, now=NOW)
    # "survey" holds alice's one post of W45, which opens a thread, and no item with a boolean "staff".
    assert not survey.staff_measured
    assert figures(survey.weeks[0]) == ("2026-W45", True, 1, 0, 1, 1, 0, 1, None, None, None)
    assert survey.threads_staff_answered is None and survey.staff_answer_share is None


def test_odd_metadata_counts_as_nothing_and_fails_nothing(any_loop: FeedbackLoop) -> None:
    """Metadata is any client's JSON: only a JSON true is a flag and only a string a thread."""
    odd: list[dict[str, Any]] = [{"staff": "true", "thread": 7, "opens_thread": 1}, {"staff": [True], "thread": ["t"]},
           {"staff": None, "opens_thread": "yes"}]
    with any_loop.session() as session:
        ingest(any_loop, session, [ItemDraft(text=f"odd {n}", channel="api", external_id=f"o{n}", author=f"a{n}",
                                             created_at=at(17, 10), metadata=metadata)
                                   for n, metadata in enumerate(odd)])
    with any_loop.session() as session:
        vitality = channel_vitality(session, "api", weeks=2, now=NOW)
    assert not vitality.staff_measured
    assert figures(vitality.weeks[0]) == ("2026-W47", True, 3, 0, 3, 3, 0, 0, None, None, None)


def test_weeks_are_iso_weeks_in_utc() -> None:
    # Sunday 23:30 at UTC-5 is Monday 04:30 UTC: the next ISO week.
    late_sunday = datetime(2026, 11, 22, 23, 30, tzinfo=UTC) + timedelta(hours=5)
    assert week_start(late_sunday) == datetime(2026, 11, 23, tzinfo=UTC)
    assert week_start(datetime(2026, 11, 22, 23, 59)) == datetime(2026, 11, 16, tzinfo=UTC)  # naive is UTC


def test_trend_needs_two_complete_weeks_and_says_steady_within_five_percent() -> None:
    assert posts_trend([4]).direction == "unknown" and posts_trend([4]).slope is None
    assert posts_trend([100, 101, 100, 102]).direction == "steady"  # slope 0.5, 0.5 % of the mean
    assert posts_trend([2, 4, 6]).direction == "rising" and posts_trend([2, 4, 6]).slope == pytest.approx(2.0)
    assert posts_trend([0, 0, 0]).direction == "steady"


def test_bad_window_and_unknown_channel_are_refused(loop: FeedbackLoop) -> None:
    add_posts(loop)
    with loop.session() as session:
        for weeks in (0, 105):
            with pytest.raises(InvalidInput):
                channel_vitality(session, "forum", weeks=weeks, now=NOW)
        with pytest.raises(NotFound):
            require_channel(session, "nowhere")
        assert require_channel(session, "forum") == "forum"
        assert known_channels(session) == ["forum", "survey"]
