"""Community vitality through the API (``GET /api/v1/channels/{name}/vitality``) and the workspace
(``/channels``, ``/channels/{name}``): scopes, bad input, the figures, and the pages' accessibility."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from playwright.sync_api import expect
from typer.testing import CliRunner

from core.auth.api_keys import create_api_key
from core.cli.app import app as cli_app
from core.clock import utcnow
from core.community.models_vitality import DeclineEpisode
from core.community.vitality import WEEK, week_start
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import Channel
from core.types import ItemDraft
from tests.support.browser import PageFactory, assert_accessible, screenshot
from tests.support.env import ADMIN_KEY
from tests.support.loops import make_loop
from tests.support.workspace import sign_in
from tests.support.workspace_browser import served_workspace
from tests.support.workspace_browser import sign_in as sign_in_page


def last_complete_week() -> datetime:
    return week_start(utcnow()) - WEEK


def add_forum(loop: FeedbackLoop, with_episode: bool = False) -> None:
    """Last complete week: ann opens t1 (staff answers 3 h later), ben opens t2 (no staff answer), ann replies."""
    monday = last_complete_week()
    posts = [("p1", "annika-q", 1, "t1", True, False), ("p2", "bennet-q", 2, "t2", True, False),
             ("p3", "support-sam-q", 4, "t1", False, True), ("p4", "annika-q", 5, "t2", False, False)]
    with loop.session() as session:
        session.add(Channel(name="forum", plugin="discourse", options={"owner": "community"}))
        ingest(loop, session, [ItemDraft(text=f"forum post {external_id}", channel="forum", external_id=external_id,
                                         author=author, created_at=monday + timedelta(hours=hour),
                                         metadata={"thread": thread, "opens_thread": opens, "staff": staff})
                               for external_id, author, hour, thread, opens, staff in posts])
        if with_episode:
            session.add(DeclineEpisode(channel="forum", peak_week=monday - WEEK * 3, detected_week=monday,
                                       weekly_posts=[20, 15, 10, 3], notice_state="sent", owner="community",
                                       target_type="chat_webhook", attempts=1, details={}))


def test_vitality_api_answers_the_figures_to_a_read_key(loop: FeedbackLoop, client: TestClient) -> None:
    add_forum(loop, with_episode=True)
    with loop.session() as session:
        read = create_api_key(session, "dashboard", ["read"])
        intake = create_api_key(session, "forms", ["intake"])
    answer = client.get("/api/v1/channels/forum/vitality", params={"weeks": 4},
                        headers={"Authorization": f"Bearer {read}"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["channel"] == "forum" and len(body["weeks"]) == 4 and body["staff_measured"] is True
    last = body["weeks"][-2]
    year, number, _ = last_complete_week().isocalendar()
    assert last["week"] == f"{year}-W{number:02d}" and last["complete"] is True and not body["weeks"][-1]["complete"]
    # p1 p2 p4 are the community's (p3 is staff's); ann and ben are new; t1 answered by staff after 3 h, t2 not.
    assert {key: last[key] for key in ("posts", "staff_posts", "active_authors", "new_authors", "returning_authors",
                                       "threads_opened", "threads_staff_answered", "staff_answer_share",
                                       "median_hours_to_staff_answer")} == {
        "posts": 3, "staff_posts": 1, "active_authors": 2, "new_authors": 2, "returning_authors": 0,
        "threads_opened": 2, "threads_staff_answered": 1, "staff_answer_share": 0.5,
        "median_hours_to_staff_answer": 3.0}
    assert body["decline"]["declining"] is True and body["decline"]["weeks"] == 3
    assert body["decline"]["owner"] == "community"
    assert body["decline"]["episodes"][0]["weekly_posts"] == [20, 15, 10, 3]
    assert "annika-q" not in answer.text and "support-sam-q" not in answer.text  # counts, never people
    assert client.get("/api/v1/channels/forum/vitality").status_code == 401
    refused = client.get("/api/v1/channels/forum/vitality", headers={"Authorization": f"Bearer {intake}"})
    assert refused.status_code == 403 and "read" in refused.json()["detail"]


def test_vitality_api_refuses_bad_input_with_a_4xx(loop: FeedbackLoop, client: TestClient) -> None:
    add_forum(loop)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    missing = client.get("/api/v1/channels/nowhere/vitality", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    for weeks in ("0", "105", "x", "-1"):
        assert client.get(f"/api/v1/channels/forum/vitality?weeks={weeks}", headers=admin).status_code == 422
    assert client.get(f"/api/v1/channels/{'x' * 129}/vitality", headers=admin).status_code == 422


def test_channel_pages_show_figures_chart_and_episodes(loop: FeedbackLoop, client: TestClient) -> None:
    add_forum(loop, with_episode=True)
    signed_out = client.get("/channels", follow_redirects=False)
    assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/signin")
    sign_in(client, loop, role="viewer")
    listing = client.get("/channels")
    assert listing.status_code == 200
    assert '<a href="/channels" aria-current="page" data-key="c">Channels</a>' in listing.text
    assert '<a href="/channels/forum">forum</a>' in listing.text and "declining" in listing.text
    assert re.search(r'<svg class="sparkline"[^>]* role="img" aria-label="forum: posts per week', listing.text)
    page = client.get("/channels/forum?weeks=8")
    assert page.status_code == 200
    html = page.text
    assert "<caption>forum: figures per ISO week (UTC), oldest first</caption>" in html
    assert html.count('<th scope="row">') == 8 and "(so far)" in html
    assert re.search(r'<svg class="timeline"[^>]* role="img" aria-label="forum: posts and active authors per week">'
                     r"<title>[^<]+</title><desc>3 posts from", html)
    assert "1 (50%)" in html and "3.0 h" in html  # the last complete week's staff answers
    assert "still falling" in html and "20, 15, 10, 3" in html and "community (chat_webhook)" in html
    assert "annika-q" not in html and "support-sam-q" not in html
    assert client.get("/channels/nowhere").status_code == 404
    with loop.session() as session:  # a configured channel without items, its decline option mistyped
        session.add(Channel(name="broken", plugin="discourse", options={"decline_weeks": "three"}))
    broken = client.get("/channels/broken")
    assert broken.status_code == 200
    assert "Off until the channel's options are fixed: channel option &#39;decline_weeks&#39; must be" in broken.text
    assert client.get("/channels/forum?weeks=0").status_code == 422


def test_channel_pages_pass_axe(tmp_path: Path, page_for: PageFactory) -> None:
    with served_workspace(tmp_path / "served") as workspace:
        add_forum(workspace.loop, with_episode=True)
        with page_for(workspace.url) as page:
            sign_in_page(page, workspace, "viewer", next_path="/channels")
            screenshot(page, "workspace-channels")
            assert_accessible(page)
            page.get_by_role("link", name="forum", exact=True).click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Channel forum")
            expect(page.get_by_role("img", name="forum: posts and active authors per week")).to_be_visible()
            screenshot(page, "workspace-channel")
            assert_accessible(page)


def test_cli_prints_the_weeks_in_80_columns(cli_env: str) -> None:
    loop = make_loop(cli_env)
    add_forum(loop)
    loop.close()
    runner = CliRunner()
    shown = runner.invoke(cli_app, ["channels", "vitality", "forum", "--weeks", "4"], env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    year, number, _ = last_complete_week().isocalendar()
    [row] = [line for line in lines if line.startswith(f"{year}-W{number:02d}")]
    assert row.split() == [f"{year}-W{number:02d}", "3", "1", "2", "2", "0", "2", "1", "(50%)", "3.0"]
    assert "Posts per week: rising" in shown.output
    assert runner.invoke(cli_app, ["channels", "vitality", "nowhere"]).exit_code == 2
    assert runner.invoke(cli_app, ["channels", "vitality", "forum", "--weeks", "0"]).exit_code == 2
