"""The theme page's "Champions" section: the table, an invitation previewed then posted once with the
session's CSRF token, answers recorded as consent, and what a viewer may not do."""

from __future__ import annotations

import html
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core.community.models_champions import ChampionInvitation
from core.loop import FeedbackLoop
from core.models import AuditEntry
from tests.support import champions as support
from tests.support.champions import Rooms, pseudonym
from tests.support.workspace import sign_in

# The fixtures of tests/support/champions.py, by name.
rooms, community = support.rooms, support.community


@pytest.fixture
def web(community: tuple[FeedbackLoop, int]) -> Iterator[TestClient]:
    loop, _ = community
    with TestClient(create_app(loop.settings, loop=loop), base_url="http://127.0.0.1") as client:
        yield client


def invitations(loop: FeedbackLoop) -> list[tuple[str | None, str, str | None, str | None]]:
    with loop.session() as session:
        return [(row.author_pseudonym, row.state, row.answer, row.answered_by)
                for row in session.scalars(select(ChampionInvitation).order_by(ChampionInvitation.id))]


def test_the_theme_page_lists_champions_with_an_invite_button(web: TestClient,
                                                              community: tuple[FeedbackLoop, int]) -> None:
    loop, theme_id = community
    sign_in(web, loop)
    page = web.get(f"/themes/{theme_id}")
    assert page.status_code == 200
    section = page.text[page.text.index('id="champions-h"'):]
    shown = [pseudonym(loop, name)[:12] for name in ("alice", "dave", "bob", "carol")]
    positions = [section.index(short) for short in shown]
    assert positions == sorted(positions)  # in the ranking's order
    assert pseudonym(loop, "erin")[:12] not in section  # staff
    assert section.count("Invite…") == 4


def test_an_invitation_is_previewed_then_posted_once(web: TestClient, rooms: Rooms,
                                                     community: tuple[FeedbackLoop, int]) -> None:
    loop, theme_id = community
    csrf = sign_in(web, loop)
    alice = pseudonym(loop, "alice")
    preview = web.get(f"/themes/{theme_id}/champions/{alice}/invite", params={"kind": "interview"})
    assert preview.status_code == 200 and "interview" in preview.text and "chat" in preview.text
    assert rooms.posted == [] and invitations(loop) == []  # a preview posts nothing
    action = f"/themes/{theme_id}/champions/{alice}/invite"
    forged = web.post(action, data={"kind": "interview"}, follow_redirects=False)
    assert forged.status_code == 403 and rooms.posted == []
    elsewhere = web.post(action, data={"kind": "interview", "csrf_token": csrf},
                         headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert elsewhere.status_code == 403 and rooms.posted == []
    done = web.post(action, data={"kind": "interview", "csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303 and len(rooms.posted) == 1 and rooms.posted[0].thread_id == "room-1"
    page = web.get(done.headers["location"]).text
    assert "Invitation posted in chat." in html.unescape(page)
    again = web.post(action, data={"kind": "beta", "csrf_token": csrf}, follow_redirects=False)
    assert again.status_code == 409 and len(rooms.posted) == 1
    assert web.get(action, params={"kind": "beta"}).status_code == 409  # not even previewed again
    assert web.get(f"/themes/{theme_id}/champions/{alice}/invite", params={"kind": "party"}).status_code == 422


def test_answers_are_recorded_from_the_page(web: TestClient, community: tuple[FeedbackLoop, int]) -> None:
    loop, theme_id = community
    csrf = sign_in(web, loop)
    bob = pseudonym(loop, "bob")
    web.post(f"/themes/{theme_id}/champions/{bob}/invite", data={"kind": "beta", "csrf_token": csrf},
             follow_redirects=False)
    answer = f"/themes/{theme_id}/champions/{bob}/answer"
    assert web.post(answer, data={"answer": "accepted"}, follow_redirects=False).status_code == 403
    recorded = web.post(answer, data={"answer": "accepted", "csrf_token": csrf}, follow_redirects=False)
    assert recorded.status_code == 303
    assert invitations(loop) == [(bob, "sent", "accepted", "user:pm@example.com")]
    page = web.get(recorded.headers["location"]).text
    assert "accepted (consent)" in page and "Consent recorded." in page
    assert web.post(answer, data={"answer": "maybe", "csrf_token": csrf}, follow_redirects=False).status_code == 422
    assert web.post(answer, data={"answer": "declined", "csrf_token": csrf}, follow_redirects=False).status_code == 303
    with loop.session() as session:
        actions = list(session.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == str(theme_id))))
    assert actions.count("record_champion_answer") == 2 and "invite_champion" in actions


def test_a_viewer_sees_champions_but_cannot_invite(web: TestClient, rooms: Rooms,
                                                   community: tuple[FeedbackLoop, int]) -> None:
    loop, theme_id = community
    csrf = sign_in(web, loop, "viewer@example.com", "viewer")
    page = web.get(f"/themes/{theme_id}").text
    assert pseudonym(loop, "alice")[:12] in page and "Invite…" not in page
    alice = pseudonym(loop, "alice")
    refused = web.post(f"/themes/{theme_id}/champions/{alice}/invite", data={"kind": "beta", "csrf_token": csrf},
                       follow_redirects=False)
    assert refused.status_code == 403 and rooms.posted == [] and invitations(loop) == []


def test_admins_edit_the_invitation_template(web: TestClient, rooms: Rooms,
                                             community: tuple[FeedbackLoop, int]) -> None:
    loop, theme_id = community
    pm_csrf = sign_in(web, loop)
    assert web.get("/admin/invitation-template").status_code == 403  # admins only
    assert web.post("/admin/invitation-template", data={"template": "$kind", "csrf_token": pm_csrf},
                    follow_redirects=False).status_code == 403
    csrf = sign_in(web, loop, "admin@example.com", "admin")
    page = web.get("/admin/invitation-template")
    assert page.status_code == 200 and "Design review" in page.text and "Dark mode on mobile" in page.text
    refused = web.post("/admin/invitation-template", data={"template": "Hi @bob, $kind?", "csrf_token": csrf},
                       follow_redirects=False)
    assert refused.status_code == 422 and "mention" in refused.text
    saved = web.post("/admin/invitation-template", data={"template": "Our $kind about $theme: join? $link",
                                                         "csrf_token": csrf}, follow_redirects=False)
    assert saved.status_code == 303
    assert "Our beta about Dark mode on mobile: join?" in web.get(saved.headers["location"]).text
    web.post(f"/themes/{theme_id}/champions/{pseudonym(loop, 'dave')}/invite",
             data={"kind": "beta", "csrf_token": csrf}, follow_redirects=False)
    assert rooms.posted[0].text == f"Our beta about Dark mode on mobile: join? http://127.0.0.1:8000/themes/{theme_id}"
    with loop.session() as session:
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "set_invitation_template"))
        assert entry.actor == "user:admin@example.com"
