"""Storage: the same behaviour on SQLite and on PostgreSQL (``any_loop`` runs each test on both)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from core.intake.channels import ChannelError, add_channel, list_channels, remove_channel
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import AuditEntry, Delivery, FeedbackItem, Owner, RoutingRule, Theme, ThemeMembership
from core.routing.plan import route
from core.themes.build import embed_pending, recluster
from core.themes.review import update_theme
from core.themes.views import theme_views
from core.types import ItemDraft


def test_migrations_create_every_table(any_loop: FeedbackLoop) -> None:
    tables = set(inspect(any_loop.engine).get_table_names())
    assert {"feedback_items", "themes", "theme_memberships", "owners", "routing_rules", "deliveries",
            "audit_log", "channels", "api_keys", "alembic_version"} <= tables
    any_loop.migrate()  # running again is a no-op


def test_item_round_trip_with_metadata_and_pseudonym(any_loop: FeedbackLoop) -> None:
    draft = ItemDraft(text="Call me on +44 20 7946 0958 about the fee", channel="forum", external_id="p-1",
                      author="Alice@Example.com", url="https://forum.example/t/1", metadata={"tier": "gold", "n": 3})
    with any_loop.session() as session:
        ingest(any_loop, session, [draft])
    with any_loop.session() as session:
        item = session.scalars(select(FeedbackItem)).one()
        assert item.text_original.startswith("Call me on +44")
        assert "7946" not in item.text_redacted and "[PHONE]" in item.text_redacted
        assert item.metadata_json == {"tier": "gold", "n": 3}
        assert item.author_pseudonym == any_loop.pseudonyms.author("alice@example.com")
        assert "Alice" not in (item.author_pseudonym or "")
        assert item.kind in {"idea", "complaint", "question", "praise"} and item.sentiment is not None


def test_external_id_is_unique_per_channel(any_loop: FeedbackLoop) -> None:
    drafts = [ItemDraft(text="same id, channel a", channel="a", external_id="1"),
              ItemDraft(text="same id, channel b", channel="b", external_id="1"),
              ItemDraft(text="same id, channel a", channel="a", external_id="1")]
    with any_loop.session() as session:
        report = ingest(any_loop, session, drafts)
    assert (report.created, report.duplicates) == (2, 1)
    with pytest.raises(IntegrityError), any_loop.session() as session:
        session.add(FeedbackItem(channel="a", external_id="1", text_original="x", text_redacted="x"))
        session.flush()


def test_edit_updates_text_and_drops_the_stale_embedding(any_loop: FeedbackLoop) -> None:
    with any_loop.session() as session:
        ingest(any_loop, session, [ItemDraft(text="first text", external_id="e1")])
        embed_pending(any_loop, session)
    with any_loop.session() as session:
        report = ingest(any_loop, session, [ItemDraft(text="edited text", external_id="e1")])
        assert report.updated == 1
        item = session.scalars(select(FeedbackItem)).one()
        assert item.text_original == "edited text" and item.embedding is None
        assert embed_pending(any_loop, session) == 1
        assert embed_pending(any_loop, session) == 0  # each embedding is computed once


def test_embedding_round_trip(any_loop: FeedbackLoop) -> None:
    with any_loop.session() as session:
        ingest(any_loop, session, [ItemDraft(text="card arrived broken")])
        embed_pending(any_loop, session)
    with any_loop.session() as session:
        item = session.scalars(select(FeedbackItem)).one()
        vector = np.frombuffer(item.embedding or b"", dtype=np.float32)
        assert vector.shape == (64,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-5
        assert item.embedding_model == "hash"


def seed(loop: FeedbackLoop) -> None:
    texts = [f"card delivery is late {i}" for i in range(10)] + [f"login password reset fails {i}" for i in range(10)]
    with loop.session() as session:
        ingest(loop, session, [ItemDraft(text=t, author=f"user{i % 4}") for i, t in enumerate(texts)])
        embed_pending(loop, session)
        recluster(loop, session)


def test_themes_memberships_deliveries_and_audit(any_loop: FeedbackLoop, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "rules.toml"
    rules.write_text('[default]\nowner = "product"\n'
                     '[[rule]]\nname = "cards"\nowner = "cards"\nkeywords_any = ["card"]\n')
    any_loop.settings.rules_file = rules
    seed(any_loop)
    report = route(any_loop)
    assert report.sent == 2
    with any_loop.session() as session:
        themes = session.scalars(select(Theme)).all()
        assert len(themes) == 2
        assert session.query(ThemeMembership).filter_by(source="machine").count() == 20
        owners = {t.owner.name for t in themes if t.owner}
        assert owners == {"cards", "product"}
        deliveries = session.scalars(select(Delivery)).all()
        assert len(deliveries) == 2 and {d.state for d in deliveries} == {"sent"}
        assert all(d.idempotency_key.startswith("theme-") for d in deliveries)
        update_theme(any_loop, session, themes[0].id, "pm@example", status="planned")
    with any_loop.session() as session:
        actions = [entry.action for entry in session.scalars(select(AuditEntry))]
        assert actions.count("assign_owner") == 2 and "set_status" in actions
    assert route(any_loop).sent == 0  # never a second ticket for the same theme and target


def test_rules_and_owners_tables(any_loop: FeedbackLoop) -> None:
    with any_loop.session() as session:
        owner = Owner(name="it-security", email="sec@example.com")
        session.add(owner)
        session.flush()
        session.add(RoutingRule(name="sec", priority=5, conditions={"keywords_any": ["fraud"]}, owner_id=owner.id))
    with any_loop.session() as session:
        rule = session.scalars(select(RoutingRule)).one()
        assert rule.conditions == {"keywords_any": ["fraud"]} and rule.target_type == "inbox"


def test_channels_crud(any_loop: FeedbackLoop) -> None:
    with any_loop.session() as session:
        add_channel(any_loop, session, "survey", "webhook", secret_env="S", options={"text_field": "q"})
        with pytest.raises(ChannelError, match="already exists"):
            add_channel(any_loop, session, "survey", "webhook")
        with pytest.raises(ChannelError, match="no intake plugin"):
            add_channel(any_loop, session, "other", "carrier-pigeon")
        with pytest.raises(ChannelError, match="lower-case"):
            add_channel(any_loop, session, "Bad Name", "webhook")
    with any_loop.session() as session:
        assert [c.name for c in list_channels(session)] == ["survey"]
        remove_channel(session, "survey")
    with any_loop.session() as session:
        assert list_channels(session) == []


def test_recluster_keeps_theme_ids(any_loop: FeedbackLoop) -> None:
    seed(any_loop)
    with any_loop.session() as session:
        before = {v.label: v.id for v in theme_views(session)}
        ingest(any_loop, session, [ItemDraft(text=f"card delivery is late again {i}") for i in range(3)])
        embed_pending(any_loop, session)
        recluster(any_loop, session)
        after = {v.label: v.id for v in theme_views(session)}
    assert set(before.values()) == set(after.values())


def test_failed_transaction_keeps_what_was_stored(any_loop: FeedbackLoop) -> None:
    with any_loop.session() as session:
        ingest(any_loop, session, [ItemDraft(text="kept")])
    with pytest.raises(RuntimeError), any_loop.session() as session:
        ingest(any_loop, session, [ItemDraft(text="rolled back")])
        raise RuntimeError("crash mid-transaction")
    with any_loop.session() as session:
        assert [i.text_original for i in session.scalars(select(FeedbackItem))] == ["kept"]


def test_a_time_with_an_offset_is_stored_as_the_same_moment(any_loop: FeedbackLoop) -> None:
    """SQLite keeps a datetime's wall-clock digits: 10:00-07:00 must come back as 17:00 UTC, not 10:00."""
    from datetime import UTC, datetime

    from core.clock import aware, parse_timestamp

    written = parse_timestamp("2026-03-01T10:00:00-07:00")
    with any_loop.session() as session:
        ingest(any_loop, session, [ItemDraft(text="sync drops my edits", external_id="t1", created_at=written,
                                             updated_at=written)])
    with any_loop.session() as session:
        item = session.scalars(select(FeedbackItem)).one()
        assert aware(item.created_at) == aware(item.source_updated_at) == datetime(2026, 3, 1, 17, tzinfo=UTC)
