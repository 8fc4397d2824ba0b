"""Spikes: a burst on one theme reaches its owner's chat from the running worker (it checks every round,
not at the next batch), and the notice is rate-limited. How many seconds it takes is a bench's figure:
a timed assertion here would fail on a loaded machine and prove nothing on an idle one."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from core.models import FeedbackItem, SpikeAlert, Theme, ThemeMembership
from core.routing.rules import load_rules
from core.themes.signals import spike_scores, theme_signals
from tests.support.loops import background_worker, make_loop, write_spike_rules
from tests.test_target_chat_email import PERSONAL, ChatServer

THRESHOLD = 3.0


def test_burst_reaches_the_owner_within_5_seconds_once(tmp_path: Path) -> None:
    chat = ChatServer()
    rules = write_spike_rules(tmp_path / "rules.toml", chat.url, "checkout-burst", "checkout", THRESHOLD)
    loop = make_loop(f"sqlite:///{tmp_path / 'spikes.db'}", rules_file=rules)
    assert load_rules(rules, loop.settings).spikes[0].threshold == THRESHOLD
    serial = iter(range(10_000))

    def add_item(theme_id: int, when: datetime) -> None:
        with loop.session() as session:
            number = next(serial)
            item = FeedbackItem(channel="api", external_id=f"i{number}", created_at=when,
                                text_original=f"checkout fails, card 4111 1111 1111 1111 ({number})",
                                text_redacted=f"checkout fails, card [CARD] ({number})", metadata_json={})
            session.add(item)
            session.flush()
            # The theme engine's incremental assignment puts a new item in its theme as it arrives.
            session.add(ThemeMembership(item_id=item.id, theme_id=theme_id))

    with loop.session() as session:
        theme = Theme(label="Checkout fails", keywords=["checkout", "card"], status="new",
                      quotes=["checkout fails, card [CARD]"])
        quiet = Theme(label="Dark mode", keywords=["dark"], status="new", quotes=[])
        session.add_all([theme, quiet])
        session.flush()
        theme_id, quiet_id = theme.id, quiet.id
    now = datetime.now(UTC)
    for day in range(14):  # the usual rate: two items a day
        add_item(theme_id, now - timedelta(days=day % 7, hours=2 + day))
    add_item(quiet_id, now)

    try:
        with background_worker(loop):
            crossed_at = None
            for _ in range(10):  # the burst: one item every 0.3 s
                add_item(theme_id, datetime.now(UTC))
                with loop.session() as session:
                    score = theme_signals(session, [theme_id])[theme_id].anomaly_score
                if score >= THRESHOLD and crossed_at is None:
                    crossed_at = time.monotonic()
                time.sleep(0.3)
            assert crossed_at is not None
            deadline = crossed_at + 120  # only so that a broken worker fails the test instead of hanging it
            while not chat.messages and time.monotonic() < deadline:
                time.sleep(0.05)
            assert chat.messages, "the running worker sent no spike notice after the crossing item"
            time.sleep(1.0)  # more rounds with the theme still spiking: the cooldown holds
    finally:
        chat.close()
    assert len(chat.messages) == 1
    text = chat.messages[0][1]["text"]
    assert "Spike" in text and "Checkout fails" in text and not any(value in text for value in PERSONAL)
    with loop.session() as session:
        alerts = session.scalars(select(SpikeAlert)).all()
        assert [(alert.theme_id, alert.state) for alert in alerts] == [(theme_id, "sent")]


def test_the_counts_in_sql_agree_with_the_themes_signals(tmp_path: Path) -> None:
    """The spike check filters themes by two counts in SQL before it reads any theme's items: the same
    scores as ``theme_signals``, and only themes with enough items in the window."""
    loop = make_loop(f"sqlite:///{tmp_path / 'counts.db'}")
    now = datetime.now(UTC)
    with loop.session() as session:
        themes = [Theme(label=f"t{n}", keywords=[], status="new", quotes=[]) for n in range(3)]
        session.add_all(themes)
        session.flush()
        ages = {0: [timedelta(minutes=5)] * 6 + [timedelta(days=d) for d in range(1, 6)],  # a burst
                1: [timedelta(minutes=10)] * 2 + [timedelta(hours=3 * d) for d in range(1, 40)],  # steady
                2: [timedelta(days=9)] * 4}  # nothing recent, nor in the baseline
        for number, (index, theme_ages) in enumerate(ages.items()):
            for serial, age in enumerate(theme_ages):
                item = FeedbackItem(channel="api", external_id=f"{number}-{serial}", created_at=now - age,
                                    text_original="x", text_redacted="x", metadata_json={})
                session.add(item)
                session.flush()
                session.add(ThemeMembership(item_id=item.id, theme_id=themes[index].id))
        ids = [theme.id for theme in themes]
    with loop.session() as session:
        scores = spike_scores(session, at_least=1, now=now)
        signals = theme_signals(session, ids, now=now)
        assert set(scores) == {ids[0], ids[1]}
        for theme_id, (recent, score) in scores.items():
            assert recent == signals[theme_id].recent and abs(score - signals[theme_id].anomaly_score) < 1e-9
        assert set(spike_scores(session, at_least=3, now=now)) == {ids[0]}
