"""People's edits to themes are stored as constraints and survive every later re-clustering."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import AuditEntry, FeedbackItem, Theme, ThemeMembership
from core.routing.plan import decide
from core.themes.build import embed_pending, recluster
from core.themes.incremental import assign_new_items
from core.themes.views import theme_views
from core.types import ItemDraft

TOPICS = {"card": "parcel courier delivery card late arrived", "login": "login password reset locked app screen",
          "refund": "refund money returned merchant pending weeks"}


def seed(loop: FeedbackLoop, per_topic: int = 12) -> dict[str, int]:
    """Three clear topics; returns the theme id holding each."""
    with loop.session() as session:
        ingest(loop, session, [ItemDraft(text=f"{text} ticket{i} ref{i}x", external_id=f"{key}-{i}")
                               for key, text in TOPICS.items() for i in range(per_topic)])
        embed_pending(loop, session)
        recluster(loop, session)
        themes = {key: theme_of(session, f"{key}-0") for key in TOPICS}
    assert len(set(themes.values())) == 3
    return themes


def theme_of(session, external_id: str) -> int:  # type: ignore[no-untyped-def]
    item = session.scalars(select(FeedbackItem).where(FeedbackItem.external_id == external_id)).one()
    membership = session.get(ThemeMembership, item.id)
    assert membership is not None
    return int(membership.theme_id)


def item_id(session, external_id: str) -> int:  # type: ignore[no-untyped-def]
    return int(session.scalars(select(FeedbackItem.id).where(FeedbackItem.external_id == external_id)).one())


def grow_and_recluster(loop: FeedbackLoop, extra: int = 3) -> None:
    with loop.session() as session:
        ingest(loop, session, [ItemDraft(text=f"{text} again {i}", external_id=f"{key}-new-{i}")
                               for key, text in TOPICS.items() for i in range(extra)])
        embed_pending(loop, session)
        recluster(loop, session)


def test_merge_holds_through_reclustering(client: TestClient, auth: dict[str, str], loop: FeedbackLoop) -> None:
    themes = seed(loop)
    response = client.post(f"/api/v1/themes/{themes['card']}/merge", json={"into": themes["login"]}, headers=auth)
    assert response.status_code == 200 and response.json()["volume"] == 2 * 12
    for _ in range(2):
        grow_and_recluster(loop)
        with loop.session() as session:
            assert theme_of(session, "card-0") == theme_of(session, "login-0") == themes["login"]
            assert theme_of(session, "card-new-0") == themes["login"]
            assert session.get(Theme, themes["card"]).status == "merged"  # type: ignore[union-attr]
            assert themes["card"] not in {view.id for view in theme_views(session)}
    assert client.post(f"/api/v1/themes/{themes['login']}/merge", json={"into": themes["card"]},
                       headers=auth).status_code == 422  # merging back into itself is refused


def test_split_holds_through_reclustering(client: TestClient, auth: dict[str, str], loop: FeedbackLoop) -> None:
    themes = seed(loop)
    with loop.session() as session:
        chosen = [item_id(session, f"refund-{i}") for i in range(4)]
    response = client.post(f"/api/v1/themes/{themes['refund']}/split",
                           json={"item_ids": chosen, "label": "Refunds over 30 days"}, headers=auth)
    assert response.status_code == 201
    new_id = response.json()["id"]
    grow_and_recluster(loop)
    with loop.session() as session:
        assert {theme_of(session, f"refund-{i}") for i in range(4)} == {new_id}
        assert theme_of(session, "refund-5") == themes["refund"]
        assert session.get(Theme, new_id).label == "Refunds over 30 days"  # type: ignore[union-attr]
    bad = client.post(f"/api/v1/themes/{themes['card']}/split", json={"item_ids": chosen, "label": "x"}, headers=auth)
    assert bad.status_code == 422 and "not in theme" in bad.json()["detail"]


def test_move_holds_and_steers_near_identical_items(client: TestClient, auth: dict[str, str],
                                                    loop: FeedbackLoop) -> None:
    themes = seed(loop)
    with loop.session() as session:
        moved = item_id(session, "card-3")
    assert client.post(f"/api/v1/feedback/{moved}/move", json={"theme_id": themes["refund"]},
                       headers=auth).status_code == 200
    with loop.session() as session:  # a copy of the moved text arrives later
        ingest(loop, session, [ItemDraft(text=f"{TOPICS['card']} ticket3 ref3x", external_id="copy", channel="forum")])
        embed_pending(loop, session)
        recluster(loop, session)
        assert theme_of(session, "card-3") == themes["refund"]
        assert theme_of(session, "copy") == themes["refund"]  # steered by the person's move
        assert theme_of(session, "card-4") == themes["card"]
        # Between re-clusterings too: a copy that arrives is assigned where the person put the original.
        ingest(loop, session, [ItemDraft(text=f"{TOPICS['card']} ticket3 ref3x", external_id="copy2")])
        assert assign_new_items(loop, session).joined == 1
        assert theme_of(session, "copy2") == themes["refund"]
    missing = client.post("/api/v1/feedback/99999/move", json={"theme_id": themes["card"]}, headers=auth)
    assert missing.status_code == 404


def test_items_like_two_split_off_ones_follow_them_at_the_next_reclustering(
        client: TestClient, auth: dict[str, str], loop: FeedbackLoop) -> None:
    themes = seed(loop)
    with loop.session() as session:  # a sub-topic the clustering cannot tell from refunds on its own
        ingest(loop, session, [ItemDraft(text=f"{TOPICS['refund']} crypto wallet coin exchange blocked ticket{i}",
                                         external_id=f"crypto-{i}") for i in range(6)])
        embed_pending(loop, session)
        recluster(loop, session)
        assert {theme_of(session, f"crypto-{i}") for i in range(6)} == {themes["refund"]}
        chosen = [item_id(session, "crypto-0"), item_id(session, "crypto-1")]
    response = client.post(f"/api/v1/themes/{themes['refund']}/split",
                           json={"item_ids": chosen, "label": "Crypto refunds"}, headers=auth)
    crypto = response.json()["id"]
    grow_and_recluster(loop)
    with loop.session() as session:
        assert {theme_of(session, f"crypto-{i}") for i in range(6)} == {crypto}  # the other four followed
        assert session.get(ThemeMembership, item_id(session, "crypto-5")).source == "machine"  # type: ignore[union-attr]
        assert {theme_of(session, f"refund-{i}") for i in range(12)} == {themes["refund"]}  # refunds stayed


def test_pin_holds(client: TestClient, auth: dict[str, str], loop: FeedbackLoop) -> None:
    themes = seed(loop)
    with loop.session() as session:
        pinned = item_id(session, "login-2")
    assert client.post(f"/api/v1/feedback/{pinned}/pin", json={"theme_id": themes["login"]},
                       headers=auth).status_code == 200
    grow_and_recluster(loop)
    with loop.session() as session:
        membership = session.get(ThemeMembership, pinned)
        assert membership is not None and (membership.theme_id, membership.source) == (themes["login"], "human")
        assert [a.action for a in session.scalars(select(AuditEntry))].count("pin") == 1


def test_ignore_and_rename_hold(client: TestClient, auth: dict[str, str], loop: FeedbackLoop, tmp_path: Path) -> None:
    themes = seed(loop)
    client.patch(f"/api/v1/themes/{themes['card']}", json={"status": "ignored", "label": "Couriers"}, headers=auth)
    grow_and_recluster(loop)
    with loop.session() as session:
        theme = session.get(Theme, themes["card"])
        assert theme is not None and (theme.status, theme.label) == ("ignored", "Couriers")
        assert themes["card"] not in {decision.theme.id for decision in decide(loop, session)}  # never routed
