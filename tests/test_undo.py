"""Every PM action on a theme is previewed without writing, audited with the person, and undone exactly;
undo refuses to run twice or over a later change."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import hookimpl
from core.errors import Conflict, FeedbackloopError, InvalidInput, NotFound
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import AuditEntry, Delivery, FeedbackItem, Owner, Theme, ThemeMembership
from core.themes.build import embed_pending, recluster
from core.themes.preview import preview
from core.themes.review import merge_themes, move_item, move_items, split_theme, update_theme
from core.themes.undo import preview_undo, undo
from core.types import ItemDraft, ThemeView

PM = "user:pm@example.com"
LEAD = "user:lead@example.com"


class StatusSpy:
    def __init__(self) -> None:
        self.calls: list[tuple[int, str, str]] = []

    @hookimpl
    def theme_status_changed(self, theme: ThemeView, old_status: str, new_status: str) -> None:
        self.calls.append((theme.id, old_status, new_status))


@dataclass
class World:
    """Themes a (4 items, one pinned by a person), b (3), c (merged into a earlier), d (empty); 2 unthemed."""

    a: int
    b: int
    c: int
    d: int
    items: dict[str, list[int]]


def build_world(loop: FeedbackLoop) -> World:
    with loop.session() as session:
        support = Owner(name="support")
        session.add(support)
        session.flush()
        themes = {name: Theme(label=label, status="new", owner_id=support.id if name == "a" else None)
                  for name, label in (("a", "Card declined"), ("b", "Payment failed"), ("c", "Card refused"),
                                      ("d", "Login"))}
        session.add_all(themes.values())
        session.flush()
        items: dict[str, list[int]] = {}
        for name, count in (("a", 4), ("b", 3), ("none", 2)):
            rows = [FeedbackItem(channel="api", external_id=f"{name}-{i}", text_original=f"{name} {i}",
                                 text_redacted=f"{name} {i}") for i in range(count)]
            session.add_all(rows)
            session.flush()
            items[name] = [row.id for row in rows]
            if name != "none":
                session.add_all(ThemeMembership(item_id=row.id, theme_id=themes[name].id, score=0.5 + i / 10,
                                                source="human" if (name, i) == ("a", 3) else "machine")
                                for i, row in enumerate(rows))
        session.flush()
        merge_themes(loop, session, themes["c"].id, themes["a"].id, "user:earlier@example.com")
        return World(themes["a"].id, themes["b"].id, themes["c"].id, themes["d"].id, items)


def state(loop: FeedbackLoop) -> dict[str, Any]:
    """Everything an action may change, as plain values."""
    with loop.session() as session:
        return {"themes": sorted((t.id, t.label, t.label_locked, t.status, t.owner_id, t.merged_into_id)
                                 for t in session.scalars(select(Theme))),
                "memberships": sorted((m.item_id, m.theme_id, m.source, m.score)
                                      for m in session.scalars(select(ThemeMembership))),
                "owners": sorted((o.id, o.name) for o in session.scalars(select(Owner)))}


def audit_count(loop: FeedbackLoop) -> int:
    with loop.session() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def last_entry_id(loop: FeedbackLoop) -> int:
    with loop.session() as session:
        return int(session.scalar(select(func.max(AuditEntry.id))) or 0)


def do_undo(loop: FeedbackLoop, audit_id: int, actor: str = LEAD) -> AuditEntry:
    with loop.session() as session:
        return undo(loop, session, audit_id, actor)


@dataclass
class Case:
    action: str
    theme: Callable[[World], int]
    params: Callable[[World], dict[str, Any]]
    apply: Callable[[FeedbackLoop, Session, World], object]
    expect_line: str


CASES = {
    "rename": Case("rename", lambda w: w.a, lambda w: {"label": "Cards refused at checkout"},
                   lambda lp, s, w: update_theme(lp, s, w.a, PM, label="Cards refused at checkout"),
                   "“Card declined” will be renamed “Cards refused at checkout”"),
    "set_status": Case("set_status", lambda w: w.a, lambda w: {"status": "planned"},
                       lambda lp, s, w: update_theme(lp, s, w.a, PM, status="planned"),
                       "changes from “new” to “planned”"),
    "ignore": Case("ignore", lambda w: w.b, lambda w: {},
                   lambda lp, s, w: update_theme(lp, s, w.b, PM, status="ignored"),
                   "It will no longer be routed"),
    "set_owner_new": Case("set_owner", lambda w: w.a, lambda w: {"owner": "payments"},
                          lambda lp, s, w: update_theme(lp, s, w.a, PM, owner="payments"),
                          "A new owner “payments” will be created"),
    "set_owner_none": Case("set_owner", lambda w: w.b, lambda w: {"owner": "support"},
                           lambda lp, s, w: update_theme(lp, s, w.b, PM, owner="support"),
                           "changes from nobody to “support”"),
    "merge": Case("merge", lambda w: w.a, lambda w: {"into": w.b},
                  lambda lp, s, w: merge_themes(lp, s, w.a, w.b, PM),
                  "4 items move from “Card declined” to “Payment failed”"),
    "split": Case("split", lambda w: w.a, lambda w: {"item_ids": w.items["a"][:2], "label": "Expired cards"},
                  lambda lp, s, w: split_theme(lp, s, w.a, w.items["a"][:2], "Expired cards", PM),
                  "2 items move from “Card declined” to a new theme “Expired cards”"),
    "move_items": Case("move", lambda w: w.d,
                       lambda w: {"item_ids": [w.items["a"][0], w.items["b"][0], w.items["none"][0]]},
                       lambda lp, s, w: move_items(lp, s, [w.items["a"][0], w.items["b"][0], w.items["none"][0]],
                                                   w.d, PM),
                       "1 item without a theme goes to “Login”"),
    "move_one": Case("move", lambda w: w.b, lambda w: {"item_ids": [w.items["a"][3]]},
                     lambda lp, s, w: move_item(lp, s, w.items["a"][3], w.b, PM),
                     "1 item moves from “Card declined” to “Payment failed”"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_action_previewed_applied_and_undone_exactly(any_loop: FeedbackLoop, name: str) -> None:
    case = CASES[name]
    spy = StatusSpy()
    any_loop.pm.register(spy)
    world = build_world(any_loop)
    before, entries_before = state(any_loop), audit_count(any_loop)

    with any_loop.session() as session:  # committed: anything a preview wrote would stay
        shown = preview(session, case.action, case.theme(world), **case.params(world))
    assert state(any_loop) == before and audit_count(any_loop) == entries_before
    assert shown.title and any(case.expect_line in line for line in shown.lines), shown.lines

    with any_loop.session() as session:
        case.apply(any_loop, session, world)
    assert state(any_loop) != before
    entry_id = last_entry_id(any_loop)
    assert audit_count(any_loop) == entries_before + 1  # one action, one entry
    with any_loop.session() as session:
        described = preview_undo(session, entry_id)
    assert described.lines and audit_count(any_loop) == entries_before + 1

    undo_entry = do_undo(any_loop, entry_id)
    assert state(any_loop) == before
    with any_loop.session() as session:
        original = session.get(AuditEntry, entry_id)
        assert original is not None and original.actor == PM and original.undone_by_id == undo_entry.id
        made = session.get(AuditEntry, undo_entry.id)
        assert made is not None and (made.actor, made.action) == (LEAD, "undo")
        assert made.details["undoes"] == entry_id and made.details["changes"] == described.lines
    if case.action in ("set_status", "ignore"):
        theme_id = case.theme(world)
        assert [call for call in spy.calls if call[0] == theme_id][-2:] == [
            (theme_id, "new", case.params(world).get("status", "ignored")),
            (theme_id, case.params(world).get("status", "ignored"), "new")]
    with pytest.raises(Conflict, match="already undone"):
        do_undo(any_loop, entry_id)
    assert state(any_loop) == before


def test_preview_refuses_what_the_action_refuses(loop: FeedbackLoop) -> None:
    world = build_world(loop)
    refused: list[tuple[str, int, dict[str, Any], Callable[[FeedbackLoop, Session], object]]] = [
        ("rename", world.a, {"label": "  "}, lambda lp, s: update_theme(lp, s, world.a, PM, label="  ")),
        ("set_status", world.a, {"status": "spam"}, lambda lp, s: update_theme(lp, s, world.a, PM, status="spam")),
        ("set_owner", world.a, {"owner": " "}, lambda lp, s: update_theme(lp, s, world.a, PM, owner=" ")),
        ("merge", world.a, {"into": world.c}, lambda lp, s: merge_themes(lp, s, world.a, world.c, PM)),
        ("merge", world.a, {"into": 9999}, lambda lp, s: merge_themes(lp, s, world.a, 9999, PM)),
        ("split", world.b, {"item_ids": world.items["a"], "label": "x"},
         lambda lp, s: split_theme(lp, s, world.b, world.items["a"], "x", PM)),
        ("split", world.a, {"item_ids": [], "label": "x"}, lambda lp, s: split_theme(lp, s, world.a, [], "x", PM)),
        ("move", world.d, {"item_ids": [9999]}, lambda lp, s: move_items(lp, s, [9999], world.d, PM)),
        ("move", 9999, {"item_ids": world.items["a"]}, lambda lp, s: move_items(lp, s, world.items["a"], 9999, PM)),
        ("rename", 9999, {"label": "x"}, lambda lp, s: update_theme(lp, s, 9999, PM, label="x")),
    ]
    before = state(loop)
    for action, theme_id, params, apply in refused:
        with loop.session() as session, pytest.raises(FeedbackloopError) as shown:
            preview(session, action, theme_id, **params)
        with loop.session() as session, pytest.raises(FeedbackloopError) as applied:
            apply(loop, session)
        assert (shown.value.status_code, shown.value.message) == (applied.value.status_code, applied.value.message)
        assert shown.value.status_code in (404, 422)
    with loop.session() as session, pytest.raises(InvalidInput, match="unknown action"):
        preview(session, "delete", world.a)
    with loop.session() as session, pytest.raises(InvalidInput, match="needs 'into'"):
        preview(session, "merge", world.a, into="b")
    assert state(loop) == before


def test_merge_preview_counts_redirects_and_warns_of_tickets(loop: FeedbackLoop) -> None:
    world = build_world(loop)
    with loop.session() as session:
        session.add(Delivery(theme_id=world.a, target_type="inbox", idempotency_key="k1", state="sent"))
        session.add(Delivery(theme_id=world.a, target_type="inbox", idempotency_key="k2", state="dead"))
    with loop.session() as session:
        shown = preview(session, "merge", world.c, into=world.b)  # c was merged into a: its items are a's now
        assert shown.lines[0] == "“Card refused” has no items; none move"
        shown = preview(session, "merge", world.a, into=world.b)
    assert "1 theme merged into “Card declined” before will point to “Payment failed”" in shown.lines
    assert "1 item placed by a person stays placed, in “Payment failed”" in shown.lines
    assert "“Payment failed” will have 7 items, and keeps its name, status “new” and owner" in shown.lines
    assert shown.warnings == ["“Card declined” has 1 ticket; they stay linked to it and get no more updates, "
                              "since its items now count for “Payment failed”"]


def test_undo_refuses_to_clobber_later_changes(any_loop: FeedbackLoop) -> None:
    world = build_world(any_loop)
    with any_loop.session() as session:
        update_theme(any_loop, session, world.a, PM, label="First")
    first = last_entry_id(any_loop)
    with any_loop.session() as session:
        update_theme(any_loop, session, world.a, "user:other@example.com", label="Second")
    second = last_entry_id(any_loop)
    with pytest.raises(Conflict, match="called “Second” now"):
        do_undo(any_loop, first)
    do_undo(any_loop, second)
    do_undo(any_loop, first)  # in reverse order both go
    with any_loop.session() as session:
        theme = session.get(Theme, world.a)
        assert theme is not None and (theme.label, theme.label_locked) == ("Card declined", False)

    with any_loop.session() as session:
        update_theme(any_loop, session, world.b, PM, status="planned")
    planned = last_entry_id(any_loop)
    with any_loop.session() as session:
        update_theme(any_loop, session, world.b, "tracker:jira", status="done")
    with pytest.raises(Conflict, match="is “done” now"):
        do_undo(any_loop, planned)

    with any_loop.session() as session:
        update_theme(any_loop, session, world.a, PM, owner="payments")
    owned = last_entry_id(any_loop)
    with any_loop.session() as session:
        update_theme(any_loop, session, world.a, PM, owner="support")
    with pytest.raises(Conflict, match="another owner"):
        do_undo(any_loop, owned)


def test_undo_of_merge_refused_after_the_target_merged_on_or_items_moved(any_loop: FeedbackLoop) -> None:
    world = build_world(any_loop)
    before = state(any_loop)
    with any_loop.session() as session:
        merge_themes(any_loop, session, world.a, world.b, PM)
    into_b = last_entry_id(any_loop)
    with any_loop.session() as session:
        merge_themes(any_loop, session, world.b, world.d, PM)
    into_d = last_entry_id(any_loop)
    with pytest.raises(Conflict, match="“Payment failed” has since been merged into “Login”; undo that merge first"):
        do_undo(any_loop, into_b)
    with pytest.raises(Conflict, match="“Card declined” has since been merged into “Login”"):  # chains are flat
        do_undo(any_loop, into_b - 1)
    do_undo(any_loop, into_d)
    with any_loop.session() as session:  # a person moves one of the merged items on
        move_item(any_loop, session, world.items["a"][0], world.d, PM)
    moved = last_entry_id(any_loop)
    with pytest.raises(Conflict, match="a person has placed 1 item since this change"):
        do_undo(any_loop, into_b)
    do_undo(any_loop, moved)
    do_undo(any_loop, into_b)
    assert state(any_loop) == before  # in reverse order, everything went back


def test_undo_of_split_refused_after_items_moved_and_archives_a_ticketed_theme(any_loop: FeedbackLoop) -> None:
    world = build_world(any_loop)
    with any_loop.session() as session:
        new_id = split_theme(any_loop, session, world.a, world.items["a"][:2], "Expired cards", PM).id
    split = last_entry_id(any_loop)
    with any_loop.session() as session:
        move_item(any_loop, session, world.items["b"][0], new_id, PM)
    moved_in = last_entry_id(any_loop)
    with pytest.raises(Conflict, match=r"put items \[\d+\] in “Expired cards” since"):
        do_undo(any_loop, split)
    do_undo(any_loop, moved_in)
    with any_loop.session() as session:
        move_item(any_loop, session, world.items["a"][0], world.d, PM)
    moved_out = last_entry_id(any_loop)
    with pytest.raises(Conflict, match="a person has placed 1 item"):
        do_undo(any_loop, split)
    do_undo(any_loop, moved_out)
    with any_loop.session() as session:  # the new theme got a ticket meanwhile: it is archived, not removed
        session.add(Delivery(theme_id=new_id, target_type="inbox", idempotency_key="t", state="sent"))
        session.add(ThemeMembership(item_id=world.items["none"][0], theme_id=new_id, source="machine"))
    assert do_undo(any_loop, split).details["new_theme"] == "archived"
    with any_loop.session() as session:
        new_theme = session.get(Theme, new_id)
        assert new_theme is not None and new_theme.status == "archived"
        assert int(session.scalar(select(func.count()).select_from(ThemeMembership)
                                  .where(ThemeMembership.theme_id == new_id)) or 0) == 0
        follower = session.get(ThemeMembership, world.items["none"][0])  # the clustering's follower goes too
        assert follower is not None and (follower.theme_id, follower.source) == (world.a, "machine")


def test_what_cannot_be_undone(any_loop: FeedbackLoop) -> None:
    world = build_world(any_loop)
    with any_loop.session() as session:
        update_theme(any_loop, session, world.a, PM, label="Renamed")
    renamed = last_entry_id(any_loop)
    undone = do_undo(any_loop, renamed)
    with pytest.raises(Conflict, match="an undo cannot itself be undone"):
        do_undo(any_loop, undone.id)
    with any_loop.session() as session:
        session.add(AuditEntry(actor="router", action="assign_owner", entity_type="theme",
                               entity_id=str(world.a), details={"owner": "support"}))
        session.add(AuditEntry(actor="key:old", action="move", entity_type="theme", entity_id=str(world.b),
                               details={"item": world.items["a"][0], "from": world.a}))  # written before undo
    newest = last_entry_id(any_loop)
    with pytest.raises(Conflict, match="“assign_owner” entries cannot be undone"):
        do_undo(any_loop, newest - 1)
    with pytest.raises(Conflict, match="recorded before changes could be undone"):
        do_undo(any_loop, newest)
    with pytest.raises(NotFound):
        do_undo(any_loop, 99999)
    with any_loop.session() as session, pytest.raises(Conflict):
        preview_undo(session, undone.id)


def test_merge_undone_after_a_reclustering_puts_the_items_back(loop: FeedbackLoop) -> None:
    topics = {"card": "parcel courier delivery card late", "login": "login password reset locked app screen",
              "refund": "refund money returned merchant pending weeks"}
    with loop.session() as session:
        ingest(loop, session, [ItemDraft(text=f"{text} ticket{i} ref{i}x", external_id=f"{key}-{i}")
                               for key, text in topics.items() for i in range(12)])
        embed_pending(loop, session)
        recluster(loop, session)
        card, login = (session.scalars(select(ThemeMembership.theme_id).join(FeedbackItem)
                                       .where(FeedbackItem.external_id == f"{key}-0")).one()
                       for key in ("card", "login"))
        merge_themes(loop, session, card, login, PM)
    merged = last_entry_id(loop)
    with loop.session() as session:
        recluster(loop, session)  # the clustering keeps them together; memberships are written anew
    do_undo(loop, merged)
    with loop.session() as session:
        theme = session.get(Theme, card)
        assert theme is not None and (theme.status, theme.merged_into_id) == ("new", None)
        card_items = session.scalars(select(ThemeMembership.theme_id).join(FeedbackItem)
                                     .where(FeedbackItem.external_id.like("card-%")))
        assert set(card_items) == {card}
        recluster(loop, session)  # and the clustering no longer sends them to login
        assert set(session.scalars(select(ThemeMembership.theme_id).join(FeedbackItem)
                                   .where(FeedbackItem.external_id.like("card-%")))) == {card}


def test_two_people_undoing_one_entry_at_once_undo_it_once(any_loop: FeedbackLoop) -> None:
    world = build_world(any_loop)
    with any_loop.session() as session:
        split_theme(any_loop, session, world.a, world.items["a"][:2], "Expired cards", PM)
    split = last_entry_id(any_loop)
    first_done, outcomes = threading.Event(), {}

    def first() -> None:
        with any_loop.session() as session:
            undo(any_loop, session, split, PM)
            first_done.set()
            time.sleep(0.5)  # the other undo starts while this one is not committed yet

    def second() -> None:
        first_done.wait(10)
        try:
            do_undo(any_loop, split, LEAD)
            outcomes["second"] = "undone"
        except Conflict as error:
            outcomes["second"] = error.message

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes["second"] in (f"entry #{split} was already undone (by entry #{split + 1})",
                                  f"entry #{split} was undone by someone else just now")
    with any_loop.session() as session:
        assert [e.actor for e in session.scalars(select(AuditEntry).where(AuditEntry.action == "undo"))] == [PM]
