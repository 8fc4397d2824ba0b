"""The workspace's pages over HTTP (no browser): each theme action previewed without writing, applied,
audited with the person's name and undone; route now; suggestions; triage; bad input is a 4xx page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from core.loop import FeedbackLoop
from core.models import AuditEntry, Delivery, SuggestionDecision, Theme, ThemeMembership
from tests.support.loops import make_loop
from tests.support.themes import CHECKOUT, LOGIN, build_themes
from tests.support.workspace import sign_in

RULES = '[default]\nowner = "product"\ntarget = "inbox"\n'


@pytest.fixture
def rules_loop(tmp_path: Path) -> Iterator[FeedbackLoop]:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    feedback_loop = make_loop(f"sqlite:///{tmp_path / 'pages.db'}", rules_file=rules)
    build_themes(feedback_loop, CHECKOUT + LOGIN)
    yield feedback_loop
    feedback_loop.close()


@pytest.fixture
def web(rules_loop: FeedbackLoop) -> Iterator[TestClient]:
    with TestClient(create_app(rules_loop.settings, loop=rules_loop), base_url="http://127.0.0.1") as client:
        yield client


def themes(loop: FeedbackLoop) -> list[tuple[int, str, str]]:
    with loop.session() as session:
        return [(t.id, t.label, t.status) for t in session.scalars(select(Theme).order_by(Theme.id))]


def members(loop: FeedbackLoop, theme_id: int) -> list[int]:
    with loop.session() as session:
        return sorted(session.scalars(select(ThemeMembership.item_id).where(ThemeMembership.theme_id == theme_id)))


def snapshot(loop: FeedbackLoop) -> tuple[object, ...]:
    with loop.session() as session:
        return (tuple((t.id, t.label, t.status, t.owner_id, t.merged_into_id)
                      for t in session.scalars(select(Theme).order_by(Theme.id))),
                tuple(session.execute(select(ThemeMembership.item_id, ThemeMembership.theme_id)
                                      .order_by(ThemeMembership.item_id)).all()))


def apply(web: TestClient, csrf: str, theme_id: int, **fields: object) -> str:
    """Preview an action (checking it writes nothing) then apply it; returns the page it leads to."""
    query = [(key, str(v)) for key, value in fields.items() if key != "item"
             for v in (value if isinstance(value, list) else [value])]
    query += [("item", str(item)) for item in fields.get("item", [])]  # type: ignore[union-attr]
    preview = web.get(f"/themes/{theme_id}/preview", params=query)
    assert preview.status_code == 200, preview.text[-500:]
    assert "What will change" in preview.text
    done = web.post(f"/themes/{theme_id}/apply", data={**dict(query), "item": [v for k, v in query if k == "item"],
                                                       "csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303, done.text[-500:]
    return str(done.headers["location"])


def test_every_action_is_previewed_applied_audited_and_undone(web: TestClient, rules_loop: FeedbackLoop) -> None:
    csrf = sign_in(web, rules_loop)
    (first, _, _), (second, _, _) = themes(rules_loop)[:2]
    steps = [dict(action="rename", label="Checkout fails at payment"), dict(action="set_status", status="planned"),
             dict(action="set_owner", owner="payments"), dict(action="ignore"), dict(action="merge", into=second)]
    for fields in steps:
        before = snapshot(rules_loop)
        web.get(f"/themes/{first}/preview", params=fields)  # a preview alone writes nothing
        assert snapshot(rules_loop) == before
        location = apply(web, csrf, first, **fields)
        assert snapshot(rules_loop) != before, fields
        undo_id = re.search(r"undo=(\d+)", location)
        assert undo_id is not None, location
        with rules_loop.session() as session:
            entry = session.get(AuditEntry, int(undo_id.group(1)))
            assert entry is not None and entry.actor == "user:pm@example.com"
        assert web.get(f"/history/{undo_id.group(1)}/undo").status_code == 200  # its preview
        undone = web.post(f"/history/{undo_id.group(1)}/undo", data={"csrf_token": csrf, "back": str(first)},
                          follow_redirects=False)
        assert undone.status_code == 303
        assert snapshot(rules_loop) == before, fields
        again = web.post(f"/history/{undo_id.group(1)}/undo", data={"csrf_token": csrf}, follow_redirects=False)
        assert again.status_code == 409 and "undone" in again.text


def test_split_and_move_then_suggestions_are_judged(web: TestClient, rules_loop: FeedbackLoop) -> None:
    csrf = sign_in(web, rules_loop)
    (first, _, _), (second, _, _) = themes(rules_loop)[:2]
    items = members(rules_loop, first)
    location = apply(web, csrf, first, action="split", label="Coupons", item=items[:2])
    new_theme = int(re.search(r"/themes/(\d+)", location).group(1))  # type: ignore[union-attr]
    assert members(rules_loop, new_theme) == items[:2]
    page = web.get(location)
    assert page.status_code == 200
    shown = re.findall(r'name="shown" value="(\d+)"', page.text)
    assert shown and set(map(int, shown)) <= set(items[2:])  # the rest of the source theme, ranked
    rejected = int(shown[0])
    answer = web.post(f"/themes/{new_theme}/suggestions", data={"csrf_token": csrf, "verdict": "reject",
                                                                 "shown": shown, "item": [str(rejected)]},
                      follow_redirects=False)
    assert answer.status_code == 303
    with rules_loop.session() as session:
        decision = session.scalars(select(SuggestionDecision)).one()
        assert (decision.item_id, decision.theme_id, decision.accepted) == (rejected, new_theme, False)
    accepted = int(shown[-1]) if len(shown) > 1 else None
    if accepted is not None and accepted != rejected:
        web.post(f"/themes/{new_theme}/suggestions", data={"csrf_token": csrf, "verdict": "accept",
                                                           "shown": shown, "item": [str(accepted)]})
        assert accepted in members(rules_loop, new_theme)
    moved = members(rules_loop, second)[:2]
    location = apply(web, csrf, second, action="move", to=first, item=moved)
    assert set(moved) <= set(members(rules_loop, first)) and location.startswith(f"/themes/{first}?")


def test_route_now_writes_one_ticket_and_sends_it(web: TestClient, rules_loop: FeedbackLoop) -> None:
    csrf = sign_in(web, rules_loop)
    first = themes(rules_loop)[0][0]
    preview = web.get(f"/themes/{first}/preview", params={"action": "route"})
    assert "A ticket goes to product through inbox" in preview.text
    for _ in range(2):
        done = web.post(f"/themes/{first}/apply", data={"action": "route", "csrf_token": csrf},
                        follow_redirects=False)
        assert done.status_code == 303
    with rules_loop.session() as session:
        deliveries = session.scalars(select(Delivery).where(Delivery.theme_id == first)).all()
        assert len(deliveries) == 1 and deliveries[0].state == "sent"  # sent after the answer, never twice
    page = web.get(f"/themes/{first}")
    assert "Tickets" in page.text and "inbox" in page.text


def test_triage_accepts_assigns_and_ignores(web: TestClient, rules_loop: FeedbackLoop) -> None:
    csrf = sign_in(web, rules_loop)
    (first, _, _), (second, _, _) = themes(rules_loop)[:2]
    page = web.get("/triage")
    assert page.status_code == 200 and page.text.count('<span class="status">new</span>') >= 2
    count = int(re.search(r'data-live="triage"[^>]*>(\d+)<', page.text).group(1))  # type: ignore[union-attr]
    assert count >= 2
    web.post(f"/triage/{first}", data={"csrf_token": csrf, "verdict": "accept"})
    web.post(f"/triage/{first}", data={"csrf_token": csrf, "verdict": "assign", "owner": "payments"})
    web.post(f"/triage/{second}", data={"csrf_token": csrf, "verdict": "ignore"})
    with rules_loop.session() as session:
        one, two = session.get(Theme, first), session.get(Theme, second)
        assert one is not None and two is not None
        assert one.status == "triaged" and one.owner is not None and one.owner.name == "payments"
        assert two.status == "ignored"
        assert session.scalar(select(func.count()).select_from(AuditEntry)
                              .where(AuditEntry.actor == "user:pm@example.com")) == 3
    live = web.get("/live").json()
    assert live["triage"] < count and live["newest_item"] > 0


def test_bad_input_is_a_clear_4xx_page_and_nothing_changes(web: TestClient, rules_loop: FeedbackLoop) -> None:
    csrf = sign_in(web, rules_loop)
    first = themes(rules_loop)[0][0]
    before = snapshot(rules_loop)
    for path, expected in [("/themes/999999", 404), ("/?status=bogus", 422), ("/?window=2y", 422),
                           ("/?page=0", 422), ("/?unknown=1", 422), (f"/themes/{first}?grain=year", 422),
                           (f"/themes/{first}/preview?action=explode", 422),
                           (f"/themes/{first}/preview?action=merge&into={first}", 422),
                           (f"/themes/{first}/preview?action=rename&label=", 422),
                           (f"/themes/{first}/preview?action=move&item=1", 422),
                           (f"/themes/{first}/preview?action=split&item=abc&label=x", 422)]:
        answer = web.get(path)
        assert answer.status_code == expected, (path, answer.status_code, answer.text[-300:])
        assert "<h1>" in answer.text and "Traceback" not in answer.text
    posted = web.post(f"/themes/{first}/apply", data={"csrf_token": csrf, "action": "set_status",
                                                      "status": "finished"}, follow_redirects=False)
    assert posted.status_code == 422
    assert snapshot(rules_loop) == before


def test_the_overview_filters_sorts_and_keeps_them_in_links(web: TestClient, rules_loop: FeedbackLoop) -> None:
    sign_in(web, rules_loop, "viewer@example.com", "viewer")
    page = web.get("/", params={"q": "checkout", "sort": "volume", "window": "7d"})
    assert page.status_code == 200
    rows = page.text.count('class="theme-row"')
    assert rows >= 1 and rows < len(themes(rules_loop)) + 1
    assert "q=checkout" in page.text and "window=7d" in page.text  # links keep the filters
    everything = web.get("/", params={"window": "all"})
    assert everything.text.count('class="theme-row"') == len(themes(rules_loop))
    assert web.get("/", params={"owner": "none"}).status_code == 200


def test_items_placed_with_little_confidence_are_triaged_and_can_be_kept(web: TestClient,
                                                                         rules_loop: FeedbackLoop) -> None:
    csrf = sign_in(web, rules_loop)
    with rules_loop.session() as session:
        scores = session.scalars(select(ThemeMembership.score)).all()
        assert scores and all(score is not None and -1.0 <= score <= 1.0 for score in scores)
        weakest = session.scalars(select(ThemeMembership).order_by(ThemeMembership.score)).first()
        assert weakest is not None
        weakest.score, item_id, theme_id = 0.1, weakest.item_id, weakest.theme_id  # as if barely placed
        session.commit()
    page = web.get("/triage")
    assert '<span class="status">unsure</span>' in page.text and f"/triage/items/{item_id}" in page.text
    kept = web.post(f"/triage/items/{item_id}", data={"csrf_token": csrf, "verdict": "keep"},
                    follow_redirects=False)
    assert kept.status_code == 303
    with rules_loop.session() as session:
        membership = session.get(ThemeMembership, item_id)
        assert membership is not None and (membership.theme_id, membership.source) == (theme_id, "human")
    assert f"/triage/items/{item_id}" not in web.get("/triage").text


def test_an_action_that_changes_nothing_offers_no_undo_of_an_earlier_one(web: TestClient,
                                                                          rules_loop: FeedbackLoop) -> None:
    csrf = sign_in(web, rules_loop)
    first, _, status = themes(rules_loop)[0]
    assert "undo=" in apply(web, csrf, first, action="rename", label="Checkout fails")
    same = web.post(f"/themes/{first}/apply", data={"action": "set_status", "status": status, "csrf_token": csrf},
                    follow_redirects=False)
    assert same.status_code == 303 and "undo=" not in same.headers["location"]
