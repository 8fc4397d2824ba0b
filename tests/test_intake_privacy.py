"""Privacy and volume honesty: erasure on request, pseudonymous authors, near-duplicates, impact fields."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from core.audit import cli_actor
from core.cli.app import app
from core.intake.erasure import ForgetError, forget_author
from core.intake.impact import apply_impact
from core.intake.ingest import delete_items, ingest
from core.loop import FeedbackLoop
from core.models import AuditEntry, FeedbackItem, ItemSighting, ItemTombstone, Theme, ThemeMembership
from core.settings import get_settings
from core.themes.build import embed_pending, recluster
from core.types import ItemDraft
from tests.support.loops import make_loop


def draft(text: str, channel: str, external_id: str, author: str | None = "ana", **metadata: object) -> ItemDraft:
    return ItemDraft(text=text, channel=channel, external_id=external_id, author=author, metadata=dict(metadata),
                     url=f"https://{channel}.example/{external_id}")


def count(loop: FeedbackLoop, model: type) -> int:
    with loop.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_same_author_same_text_across_channels_is_one_item(any_loop: FeedbackLoop) -> None:
    with any_loop.session() as session:
        report = ingest(any_loop, session, [
            draft("Please add  SSO login", "forum", "p1"),
            draft("please add SSO login", "github", "i9"),  # same words, other channel
            draft("Please add SSO login", "forum", "p2", author="bob"),  # another person: another voice
            draft("Please add SSO login", "survey", "s1", author=None),  # unknown author: kept
        ])
    assert (report.created, report.linked) == (3, 1)
    with any_loop.session() as session:
        sighting = session.scalar(select(ItemSighting))
        assert sighting is not None and (sighting.channel, sighting.url) == ("github", "https://github.example/i9")
        again = ingest(any_loop, session, [draft("please add SSO login", "github", "i9")])
    assert again.duplicates == 1 and count(any_loop, FeedbackItem) == 3


def test_deleting_the_first_sighting_keeps_the_item_alive_elsewhere(loop: FeedbackLoop) -> None:
    with loop.session() as session:
        ingest(loop, session, [draft("Dark mode please", "forum", "p1"), draft("Dark mode please", "github", "i1")])
        assert delete_items(session, "forum", ["p1"]) == 1
    with loop.session() as session:
        [item] = session.scalars(select(FeedbackItem)).all()
        assert (item.channel, item.external_id) == ("github", "i1")
        assert session.scalar(select(func.count()).select_from(ItemSighting)) == 0


def test_editing_a_sighting_makes_it_an_item_of_its_own(loop: FeedbackLoop) -> None:
    with loop.session() as session:
        ingest(loop, session, [draft("Dark mode please", "forum", "p1"), draft("Dark mode please", "github", "i1")])
        report = ingest(loop, session, [draft("Dark mode and a bigger font please", "github", "i1")])
    assert report.created == 1 and count(loop, FeedbackItem) == 2 and count(loop, ItemSighting) == 0


def seeded(loop: FeedbackLoop) -> None:
    drafts = [draft(f"card delivery late again {i}", "forum", f"c{i}", author="ana") for i in range(6)]
    drafts += [draft(f"app login password reset {i}", "forum", f"l{i}", author=f"user{i}") for i in range(6)]
    drafts.append(draft("card delivery late again 0", "github", "g0", author="ANA "))  # a sighting
    with loop.session() as session:
        ingest(loop, session, drafts)
        embed_pending(loop, session)
        recluster(loop, session)


def test_forget_erases_items_embeddings_memberships_and_is_audited(any_loop: FeedbackLoop) -> None:
    seeded(any_loop)
    with any_loop.session() as session:
        report = forget_author(session, "Ana", actor="dpo@example", pseudonyms=any_loop.pseudonyms)
    assert (report.items, report.sightings) == (6, 1) and report.themes_scrubbed >= 1
    with any_loop.session() as session:
        assert session.scalar(select(func.count()).select_from(FeedbackItem)) == 6
        assert session.scalar(select(func.count()).select_from(ItemSighting)) == 0
        member_ids = set(session.scalars(select(ThemeMembership.item_id)))
        assert member_ids <= set(session.scalars(select(FeedbackItem.id)))
        assert not any("card delivery" in quote for theme in session.scalars(select(Theme)) for quote in theme.quotes)
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "forget_author")).all()
        assert entry.actor == "dpo@example" and entry.entity_id == report.pseudonym and "ana" not in str(entry.details)
        assert session.scalar(select(func.count()).select_from(ItemTombstone)) == 7
        late = ingest(any_loop, session, [draft("card delivery late again 1", "forum", "c1")])
    assert late.created == 0  # a redelivery after erasure does not store the words again
    with any_loop.session() as session, pytest.raises(ForgetError):
        forget_author(session, "  ", pseudonyms=any_loop.pseudonyms)


def test_forget_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FEEDBACKLOOP_DATABASE_URL", url)
    monkeypatch.setenv("FEEDBACKLOOP_LOAD_PLUGINS", "")
    get_settings.cache_clear()
    loop = make_loop(url)
    try:
        with loop.session() as session:
            ingest(loop, session, [draft("Refund took 3 weeks", "forum", "x1", author="carl"),
                                   draft("Refund is fine", "forum", "x2", author="dora")])
        result = CliRunner().invoke(app, ["forget", "--author", "carl"])
        assert result.exit_code == 0 and "Erased 1 items" in result.output
        assert CliRunner().invoke(app, ["forget", "--author", ""]).exit_code == 2
        assert count(loop, FeedbackItem) == 1
        assert CliRunner().invoke(app, ["forget", "--author", "dora", "--actor", "dpo@example"]).exit_code == 0
        with loop.session() as session:  # the audit log names the person at the terminal, and who asked
            actors = session.scalars(select(AuditEntry.actor).where(AuditEntry.action == "forget_author")
                                     .order_by(AuditEntry.id)).all()
        assert actors == [cli_actor(), f"{cli_actor()} for dpo@example"] and actors[0].startswith("cli:")
    finally:
        loop.close()
        get_settings.cache_clear()


def test_authors_are_pseudonymous_and_texts_redacted(loop: FeedbackLoop) -> None:
    with loop.session() as session:
        ingest(loop, session, [draft("Call me on +44 20 7946 0958 or ana@example.com", "forum", "r1",
                                     author="ana@example.com")])
    with loop.session() as session:
        item = session.scalar(select(FeedbackItem))
        assert item is not None and item.author_pseudonym and "ana" not in item.author_pseudonym
        assert "[EMAIL]" in item.text_redacted and "[PHONE]" in item.text_redacted


def test_impact_from_a_field_and_from_a_lookup_file(loop: FeedbackLoop, tmp_path: Path) -> None:
    lookup = tmp_path / "accounts.csv"
    lookup.write_text("key,tier,value\nana,enterprise,120000\nbob,free,\n")
    drafts = [draft("Need audit logs", "forum", "a", author="Ana"), draft("Need audit logs too", "forum", "b",
                                                                            author="bob", plan="pro", arr="900")]
    apply_impact(drafts, {"impact_file": str(lookup), "tier_field": "plan", "value_field": "arr"})
    with loop.session() as session:
        ingest(loop, session, drafts)
        rows = session.execute(select(FeedbackItem.external_id, FeedbackItem.customer_tier,
                                      FeedbackItem.account_value).order_by(FeedbackItem.external_id)).all()
    assert [tuple(row) for row in rows] == [("a", "enterprise", 120000.0), ("b", "pro", 900.0)]
