"""Decline alerts (issue 16): a channel whose posts fall weeks in a row tells its owner once per episode,
across any number of worker rounds, and again after a recovery and a new fall."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import count
from pathlib import Path

import pytest
from sqlalchemy import select

from core.clock import utcnow
from core.community.decline import check_declines, falling_streak
from core.community.decline_options import decline_settings
from core.community.models_vitality import DeclineEpisode
from core.community.vitality import WEEK, week_start
from core.errors import InvalidInput
from core.loop import FeedbackLoop
from core.models import Channel, FeedbackItem
from core.worker import run_round
from tests.support.loops import make_loop
from tests.test_target_chat_email import ChatServer

AUTHORS = ("pseudonym-ann", "pseudonym-ben", "pseudonym-cat", "pseudonym-dan", "pseudonym-eve")


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    server = ChatServer()
    yield server
    server.close()


def community_loop(tmp_path: Path, chat_url: str) -> FeedbackLoop:
    """Owner "community" gets chat messages (its rule's target); everything else goes to "product"'s inbox."""
    rules = tmp_path / "rules.toml"
    rules.write_text('[default]\nowner = "product"\n\n[[rule]]\nname = "community-rule"\nowner = "community"\n'
                     f'target = "chat_webhook"\ntarget_options = {{ url = "{chat_url}" }}\n'
                     'keywords_any = ["never-a-theme-word"]\n')
    loop = make_loop(f"sqlite:///{tmp_path / 'decline.db'}", rules_file=rules)
    with loop.session() as session:
        # Rows, not `channels add`: the vitality options join each type's declared options where the
        # channel types list them (core.community.decline.VITALITY_OPTIONS).
        session.add(Channel(name="forum", plugin="discourse",
                            options={"owner": "community", "decline_weeks": "3", "decline_min_posts": 10}))
        session.add(Channel(name="quiet", plugin="discourse", options={}))
    return loop


def add_week(loop: FeedbackLoop, channel: str, monday: datetime, posts: int, serial: Iterator[int]) -> None:
    with loop.session() as session:
        for n in range(posts):
            number = next(serial)
            session.add(FeedbackItem(channel=channel, external_id=f"{channel}-{number}",
                                     author_pseudonym=AUTHORS[n % len(AUTHORS)], created_at=monday + timedelta(hours=n),
                                     text_original=f"post {number}", text_redacted=f"post {number}", metadata_json={}))


def episodes(loop: FeedbackLoop, channel: str = "forum") -> list[DeclineEpisode]:
    with loop.session() as session:
        found = list(session.scalars(select(DeclineEpisode).where(DeclineEpisode.channel == channel)
                                     .order_by(DeclineEpisode.id)))
        session.expunge_all()
    return found


def test_decline_alert_fires_once_per_episode(tmp_path: Path, chat: ChatServer) -> None:
    loop = community_loop(tmp_path, chat.url)
    serial = count()
    current = week_start(utcnow())

    def week(offset: int) -> datetime:
        return current + WEEK * offset

    # Complete weeks 12, 20, 15, 10, 5: three falls in a row from 20 (at least 10 posts), seen now.
    for offset, posts in ((-5, 12), (-4, 20), (-3, 15), (-2, 10), (-1, 5)):
        add_week(loop, "forum", week(offset), posts, serial)
    # The quiet channel falls too, 4, 3, 2, 1, but from fewer than 10 posts a week: no alert, ever.
    for offset, posts in ((-4, 4), (-3, 3), (-2, 2), (-1, 1)):
        add_week(loop, "quiet", week(offset), posts, serial)
    add_week(loop, "forum", week(0), 1, serial)  # the current week so far: not a complete week, not judged

    for _ in range(4):  # the worker's rounds, as `feedbackloop deliveries work` runs them
        run_round(loop, poll_every_s=3600)
    for _ in range(3):
        check_declines(loop)
    assert len(chat.messages) == 1
    text = chat.messages[0][1]["text"]
    assert "Activity falling: forum (3 weeks in a row)" in text
    assert "20, 15, 10, 5" in text and text.rstrip().endswith("/channels/forum")
    assert not any(author in text for author in AUTHORS)  # counts only, nobody named
    [first] = episodes(loop)
    assert (first.weekly_posts, first.notice_state, first.owner, first.target_type, first.attempts) == (
        [20, 15, 10, 5], "sent", "community", "chat_webhook", 1)
    assert first.ended_week is None and episodes(loop, "quiet") == []

    # Next week posts rise (5 -> 9): the episode ends, nobody is told anything.
    add_week(loop, "forum", week(0), 8, serial)
    for _ in range(3):
        check_declines(loop, now=week(1) + timedelta(days=2))
    [first] = episodes(loop)
    assert first.ended_week is not None and first.ended_week.date() == week(0).date()
    assert len(chat.messages) == 1
    # Then 30, 20, 12: two falls are not yet a decline...
    for offset, posts in ((1, 30), (2, 20), (3, 12)):
        add_week(loop, "forum", week(offset), posts, serial)
    check_declines(loop, now=week(4) + timedelta(days=1))
    assert len(chat.messages) == 1 and len(episodes(loop)) == 1
    # ... and a third (6) is a new episode with a notice of its own, once whatever the rounds.
    add_week(loop, "forum", week(4), 6, serial)
    for day in range(5):
        check_declines(loop, now=week(5) + timedelta(days=day))
    assert len(chat.messages) == 2
    assert "30, 20, 12, 6" in chat.messages[1][1]["text"]
    first, second = episodes(loop)
    assert (second.weekly_posts, second.notice_state, second.ended_week) == ([30, 20, 12, 6], "sent", None)
    assert second.peak_week.date() == week(1).date()
    loop.close()


def test_a_failing_notice_is_tried_again_a_bounded_number_of_times(tmp_path: Path, database_url: str) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[default]\nowner = "community"\ntarget = "no-such-target"\n')
    loop = make_loop(database_url, rules_file=rules)  # SQLite and PostgreSQL
    with loop.session() as session:
        session.add(Channel(name="forum", plugin="discourse", options={}))  # no owner: the rules' default
    serial = count()
    current = week_start(utcnow())
    for offset, posts in ((-4, 40), (-3, 30), (-2, 20), (-1, 10)):
        add_week(loop, "forum", current + WEEK * offset, posts, serial)
    for _ in range(8):
        check_declines(loop)
    [episode] = episodes(loop)
    assert (episode.notice_state, episode.attempts, episode.owner) == ("failed", 5, "community")
    assert "no plugin provides target type 'no-such-target'" in (episode.last_error or "")
    loop.close()


def test_without_an_owner_anywhere_the_episode_is_kept_unrouted(tmp_path: Path) -> None:
    loop = make_loop(f"sqlite:///{tmp_path / 'unrouted.db'}")  # no rules file, no owner option
    with loop.session() as session:
        session.add(Channel(name="forum", plugin="discourse", options={}))
        session.add(Channel(name="off", plugin="discourse", options={"decline_weeks": 0}))
    serial = count()
    current = week_start(utcnow())
    for offset, posts in ((-4, 40), (-3, 30), (-2, 20), (-1, 10)):
        add_week(loop, "forum", current + WEEK * offset, posts, serial)
        add_week(loop, "off", current + WEEK * offset, posts, serial)
    check_declines(loop)
    check_declines(loop)
    [episode] = episodes(loop)
    assert (episode.notice_state, episode.attempts) == ("unrouted", 1)
    assert episodes(loop, "off") == []
    loop.close()


def test_falling_streak_and_options() -> None:
    assert falling_streak([5, 4, 3, 2]) == 3
    assert falling_streak([5, 4, 4, 2]) == 1  # a flat week breaks the run
    assert falling_streak([1]) == 0 and falling_streak([]) == 0
    assert decline_settings({}).weeks == 3 and decline_settings({}).min_posts == 10
    assert decline_settings({"decline_weeks": "4", "owner": " ops "}).owner == "ops"
    for bad in ({"decline_weeks": 1}, {"decline_weeks": "x"}, {"decline_weeks": True}, {"decline_min_posts": 0},
                {"owner": ""}, {"owner": 7}, {"decline_weeks": 40}):
        with pytest.raises(InvalidInput):
            decline_settings(bad)
