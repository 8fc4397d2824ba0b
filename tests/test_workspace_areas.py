"""Areas in the workspace: the overview shows each theme's area and filters by it; a theme page moves a theme
to another area (previewed, applied, audited, undone), and the move sticks through re-clustering."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core.loop import FeedbackLoop
from core.models import Area, AuditEntry, Theme
from core.themes.build import recluster
from tests.support.loops import make_loop
from tests.support.themes import CHECKOUT, LOGIN, build_themes
from tests.support.workspace import sign_in


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[FeedbackLoop]:
    feedback_loop = make_loop(f"sqlite:///{tmp_path / 'areas.db'}")
    build_themes(feedback_loop, CHECKOUT + LOGIN)
    with feedback_loop.session() as session:  # a second area to move to, whatever the grouping found
        session.add(Area(label="Accounts and security", keywords=["account"]))
        session.commit()
    yield feedback_loop
    feedback_loop.close()


@pytest.fixture
def web(loop: FeedbackLoop) -> Iterator[TestClient]:
    with TestClient(create_app(loop.settings, loop=loop), base_url="http://127.0.0.1") as client:
        yield client


def placement(loop: FeedbackLoop) -> dict[int, tuple[int | None, bool]]:
    with loop.session() as session:
        return {t.id: (t.area_id, bool(t.area_locked)) for t in session.scalars(select(Theme).order_by(Theme.id))}


def test_the_overview_shows_and_filters_by_area(web: TestClient, loop: FeedbackLoop) -> None:
    sign_in(web, loop, "viewer@example.com", "viewer")
    areas = placement(loop)
    theme_id, (area_id, _) = next((t, a) for t, a in areas.items() if a[0] is not None)
    page = web.get("/", params={"window": "all"})
    assert page.status_code == 200 and f'href="/?area={area_id}&amp;window=all"' in page.text
    assert '<label for="area">Area</label>' in page.text
    only = web.get("/", params={"window": "all", "area": str(area_id)})
    expected = sum(1 for a, _ in areas.values() if a == area_id)
    assert only.text.count('class="theme-row"') == expected and f'href="/themes/{theme_id}"' in only.text
    with loop.session() as session:
        empty = session.scalar(select(Area.id).where(Area.label == "Accounts and security"))
    assert web.get("/", params={"area": str(empty)}).text.count('class="theme-row"') == 0
    for bad in ("0", "x", "-1"):
        refused = web.get("/", params={"area": bad})
        assert refused.status_code == 422 and "area must be" in refused.text


def test_a_theme_moves_to_another_area_and_the_move_is_undone(web: TestClient, loop: FeedbackLoop) -> None:
    csrf = sign_in(web, loop)
    theme_id = next(iter(placement(loop)))
    with loop.session() as session:
        target = session.scalar(select(Area.id).where(Area.label == "Accounts and security"))
    before = placement(loop)
    page = web.get(f"/themes/{theme_id}")
    assert 'value="set_area"' in page.text and "Move to area…" in page.text
    preview = web.get(f"/themes/{theme_id}/preview", params={"action": "set_area", "area": str(target)})
    assert preview.status_code == 200 and "Accounts and security" in preview.text
    assert placement(loop) == before  # a preview writes nothing
    done = web.post(f"/themes/{theme_id}/apply", data={"action": "set_area", "area": str(target),
                                                       "csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303
    assert placement(loop)[theme_id] == (target, True)
    undo_id = re.search(r"undo=(\d+)", done.headers["location"])
    assert undo_id is not None
    with loop.session() as session:
        entry = session.get(AuditEntry, int(undo_id.group(1)))
        assert entry is not None and (entry.action, entry.actor) == ("set_area", "user:pm@example.com")
    shown = web.get(done.headers["location"])
    assert "area <a href=\"/?area=" in shown.text and "Accounts and security" in shown.text
    # Moving it where it already is writes nothing and offers no undo.
    same = web.post(f"/themes/{theme_id}/apply", data={"action": "set_area", "area": str(target),
                                                       "csrf_token": csrf}, follow_redirects=False)
    assert same.status_code == 303 and "undo=" not in same.headers["location"]
    undone = web.post(f"/history/{undo_id.group(1)}/undo", data={"csrf_token": csrf}, follow_redirects=False)
    assert undone.status_code == 303 and placement(loop) == before


def test_a_person_s_move_sticks_through_re_clustering(web: TestClient, loop: FeedbackLoop) -> None:
    csrf = sign_in(web, loop)
    theme_id = next(iter(placement(loop)))
    with loop.session() as session:
        target = session.scalar(select(Area.id).where(Area.label == "Accounts and security"))
    web.post(f"/themes/{theme_id}/apply", data={"action": "set_area", "area": str(target), "csrf_token": csrf},
             follow_redirects=False)
    with loop.session() as session:
        recluster(loop, session)
    assert placement(loop)[theme_id] == (target, True)


def test_unknown_areas_and_viewers_are_refused(web: TestClient, loop: FeedbackLoop) -> None:
    csrf = sign_in(web, loop)
    theme_id = next(iter(placement(loop)))
    before = placement(loop)
    unknown = web.get(f"/themes/{theme_id}/preview", params={"action": "set_area", "area": "999999"})
    assert unknown.status_code == 404 and "no area with id 999999" in unknown.text
    assert web.get(f"/themes/{theme_id}/preview", params={"action": "set_area", "area": "x"}).status_code == 422
    posted = web.post(f"/themes/{theme_id}/apply", data={"action": "set_area", "area": "999999", "csrf_token": csrf},
                      follow_redirects=False)
    assert posted.status_code == 404 and placement(loop) == before
    web.post("/signout", data={"csrf_token": csrf})
    sign_in(web, loop, "viewer@example.com", "viewer")
    assert 'value="set_area"' not in web.get(f"/themes/{theme_id}").text
    assert web.get(f"/themes/{theme_id}/preview", params={"action": "set_area", "area": "1"}).status_code == 403
    assert placement(loop) == before
