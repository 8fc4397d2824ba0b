"""Between re-clusterings, new items join their theme as they arrive and new themes emerge; a burst that
arrives through the API reaches its owner as a spike within seconds."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.app import create_app
from core import hookimpl
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import FeedbackItem, Theme, ThemeMembership
from core.routing.rules import load_rules
from core.themes.incremental import assign_embedded, assign_new_items
from core.types import INACTIVE_STATUSES, ItemDraft
from tests.support.env import ADMIN_KEY
from tests.support.loops import background_worker, make_loop, write_spike_rules
from tests.support.migrations import migrations
from tests.test_review import TOPICS, seed, theme_of
from tests.test_target_chat_email import ChatServer


class Created:
    def __init__(self) -> None:
        self.labels: list[str] = []

    @hookimpl
    def theme_created(self, theme) -> None:  # type: ignore[no-untyped-def]
        self.labels.append(theme.label)


def test_new_items_join_at_once_and_a_new_theme_emerges(loop: FeedbackLoop) -> None:
    themes = seed(loop)
    created = Created()
    loop.pm.register(created)
    new_topic = "invoice pdf download export accounting csv"
    with loop.session() as session:
        ingest(loop, session, [ItemDraft(text=f"{TOPICS['card']} late{i}", external_id=f"late-{i}")
                               for i in range(3)])
        ingest(loop, session, [ItemDraft(text=f"{new_topic} ticket{i}c ref{i}z", external_id=f"inv-{i}")
                               for i in range(3)])
    with loop.session() as session:
        report = assign_new_items(loop, session)
        assert (report.joined, report.new_themes, report.waiting) == (3, 0, 3)  # three are not a theme yet
        assert {theme_of(session, f"late-{i}") for i in range(3)} == {themes["card"]}
        ingest(loop, session, [ItemDraft(text=f"{new_topic} ticket{i}c ref{i}z", external_id=f"inv-{i}")
                               for i in range(3, 7)])
    with loop.session() as session:
        report = assign_new_items(loop, session)
        assert report.new_themes == 1 and report.waiting == 0
        new_theme = {theme_of(session, f"inv-{i}") for i in range(7)}
        assert len(new_theme) == 1 and new_theme.isdisjoint(themes.values())
        theme = session.get(Theme, new_theme.pop())
        assert theme is not None and "invoice" in theme.label.lower() + " ".join(theme.keywords)
    assert created.labels == [theme.label]


def _vector_near(centre: np.ndarray, towards: np.ndarray, cosine: float) -> np.ndarray:
    side = towards - (towards @ centre) * centre
    side /= np.linalg.norm(side)
    return (cosine * centre + np.sqrt(1 - cosine**2) * side).astype(np.float32)


def test_an_item_near_a_theme_is_in_it_at_once_and_a_new_theme_takes_it_over(loop: FeedbackLoop) -> None:
    """Outside the theme's radius but close to it: adopted in the same pass (no wait for a re-clustering),
    provisionally; when enough items like it arrive, the new theme they form takes it over."""
    axes = np.eye(64, dtype=np.float32)
    with loop.session() as session:
        theme = Theme(label="Card delivery", keywords=["card"], status="new", centroid=axes[0].tobytes(), radius=0.9)
        session.add(theme)
        session.flush()
        theme_id = theme.id

    def arrive(session: Session, numbers: range) -> None:
        for number in numbers:  # close to each other, at 0.7 to the theme's centre
            vector = _vector_near(axes[0], axes[1] + 0.05 * axes[2 + number], 0.7)
            session.add(FeedbackItem(channel="api", external_id=f"inv-{number}", embedding=vector.tobytes(),
                                     embedding_model="hash", text_original=f"invoice export csv {number}",
                                     text_redacted=f"invoice export csv {number}"))

    with loop.session() as session:
        arrive(session, range(1))
    with loop.session() as session:
        report = assign_embedded(loop, session)
        assert (report.joined, report.new_themes, report.waiting) == (1, 0, 0)
    with loop.session() as session:
        first = session.scalars(select(ThemeMembership).join(FeedbackItem)
                                .where(FeedbackItem.external_id == "inv-0")).one()
        assert (first.theme_id, first.adopted) == (theme_id, True) and 0.69 < (first.score or 0) < 0.71
        arrive(session, range(1, loop.settings.min_theme_size))
    with loop.session() as session:
        report = assign_embedded(loop, session)
        assert report.new_themes == 1
    with loop.session() as session:
        memberships = session.scalars(select(ThemeMembership)).all()
        assert len({m.theme_id for m in memberships}) == 1 and memberships[0].theme_id != theme_id
        assert not any(m.adopted for m in memberships) and len(memberships) == loop.settings.min_theme_size


def test_an_item_near_a_theme_born_in_the_same_pass_is_adopted_by_it(loop: FeedbackLoop) -> None:
    """A pass forms a new theme, then adopts the waiting items near it: into the stored theme's id (not the
    themer's provisional number for it)."""
    axes = np.eye(64, dtype=np.float32)
    with loop.session() as session:
        old = Theme(label="Card delivery", keywords=["card"], status="new", centroid=axes[0].tobytes(), radius=0.9)
        session.add(old)
        session.flush()  # an archived theme after it: the next stored id is not the themer's next number
        session.add(Theme(label="Old ask", keywords=[], status=sorted(INACTIVE_STATUSES)[0], merged_into_id=old.id))
        group = [axes[1] + 0.9 * axes[3 + n] for n in range(loop.settings.min_theme_size)]  # pairwise cosine 0.55
        near = axes[1] + 1.15 * axes[20]  # cosine 0.49 to each of them (not in the group), 0.61 to their centre
        for number, vector in enumerate([*group, near]):
            unit_vector = (vector / np.linalg.norm(vector)).astype(np.float32)
            session.add(FeedbackItem(channel="api", external_id=f"new-{number}", embedding=unit_vector.tobytes(),
                                     embedding_model="hash", text_original=f"invoice export {number}",
                                     text_redacted=f"invoice export {number}"))
    with loop.session() as session:
        report = assign_embedded(loop, session)
        assert (report.new_themes, report.joined, report.waiting) == (1, 1, 0)
    with loop.session() as session:
        rows = session.execute(select(FeedbackItem.external_id, ThemeMembership.theme_id, ThemeMembership.adopted)
                               .join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)).all()
        new_theme = {theme_id for _, theme_id, _ in rows}
        assert len(rows) == len(group) + 1 and len(new_theme) == 1 and session.get(Theme, new_theme.pop()) is not None
        assert {external_id for external_id, _, adopted in rows if adopted} == {f"new-{len(group)}"}


def unplaced_burst(loop: FeedbackLoop) -> int:
    with loop.session() as session:
        return len(session.scalars(select(FeedbackItem.id).outerjoin(ThemeMembership)
                                   .where(ThemeMembership.item_id.is_(None),
                                          FeedbackItem.external_id.like("burst-%"))).all())


def test_burst_through_the_api_reaches_the_owner_from_the_running_worker(tmp_path: Path) -> None:
    """The worker notices a burst by itself and tells the owner; how fast is a bench's figure, not this test's."""
    chat = ChatServer()
    rules = write_spike_rules(tmp_path / "rules.toml", chat.url, "burst", "refund")
    loop = make_loop(f"sqlite:///{tmp_path / 'burst.db'}", rules_file=rules)
    assert load_rules(rules, loop.settings).spikes
    themes = seed(loop)
    with loop.session() as session:  # the seeded history is weeks old: the theme's usual rate is low
        from datetime import UTC, datetime, timedelta

        for item in session.scalars(select(FeedbackItem)):
            item.created_at = datetime.now(UTC) - timedelta(days=3 + item.id % 20)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        with background_worker(loop), TestClient(create_app(loop.settings, loop=loop)) as client:
            sent_at = []
            for i in range(8):
                body = {"text": f"{TOPICS['refund']} now{i}", "external_id": f"burst-{i}"}
                assert client.post("/api/v1/feedback", json=body, headers=headers).status_code == 201
                sent_at.append(time.monotonic())
                time.sleep(0.2)
            deadline = sent_at[-1] + 120  # only so that a broken worker fails the test instead of hanging it
            # The notice can go out in a round that placed the first items of the burst, before the last ones
            # arrived: wait for the worker's next rounds to place those too.
            while (not chat.messages or unplaced_burst(loop)) and time.monotonic() < deadline:
                time.sleep(0.05)
        assert chat.messages, "the running worker sent no spike notice for the burst"
    finally:
        chat.close()
    with loop.session() as session:
        burst_ids = session.scalars(select(FeedbackItem.id).where(FeedbackItem.external_id.like("burst-%"))).all()
        placed = {session.get(ThemeMembership, item_id).theme_id for item_id in burst_ids}  # type: ignore[union-attr]
    assert placed == {themes["refund"]}
    assert "Spike" in chat.messages[0][1]["text"]


def test_the_adopted_flag_migration_downgrades_and_upgrades(any_loop: FeedbackLoop) -> None:
    with migrations(any_loop.engine) as schema:
        schema.down("0014")
        assert "adopted" not in schema.columns("theme_memberships")
        schema.up()
        assert "adopted" in schema.columns("theme_memberships")
