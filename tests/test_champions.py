"""Champions and co-creation (issue 16): who leads a theme's conversation, invitations sent once and only
through the channel's replies capability, never to erased authors, and answers kept as audited consent."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from core.auth.api_keys import create_api_key
from core.community.champions import theme_champions
from core.community.invitations import invite, send_invitation
from core.community.models_champions import ChampionInvitation
from core.intake.channels import add_channel
from core.intake.erasure import forget_author
from core.loop import FeedbackLoop
from core.types import ItemDraft
from tests.support import champions as support
from tests.support.champions import ADMIN, CONVERSATION, START, Rooms, audit, drafts, pseudonym, themed
from tests.support.loops import make_loop
from tests.support.migrations import migrations
from tests.test_routing_loop import API_KEY_ENV, DiscourseApi

# The fixtures of tests/support/champions.py, by name.
rooms, community, api = support.rooms, support.community, support.api


def test_champions_are_ranked_by_posts_replies_and_earliest_combined(community: tuple[FeedbackLoop, int]) -> None:
    loop, theme_id = community
    with loop.session() as session:
        champions = theme_champions(session, theme_id)
    names = {pseudonym(loop, name): name for name in ("alice", "bob", "carol", "dave", "erin")}
    assert [names[c.pseudonym] for c in champions] == ["alice", "dave", "bob", "carol"]
    alice, dave, bob, carol = champions
    assert (alice.posts, alice.threads_opened, alice.replies_received) == (4, 1, 1)
    assert (bob.posts, bob.threads_opened, bob.replies_received) == (1, 1, 3)
    assert (carol.posts, carol.replies_received, dave.first_post_at) == (2, 0, START)
    with loop.session() as session:
        assert len(theme_champions(session, theme_id, limit=2)) == 2


def test_the_top_five_by_default_and_staff_never(api: TestClient, community: tuple[FeedbackLoop, int]) -> None:
    loop, theme_id = community
    more = [(f"reader{n}", f"room-{10 + n}", True, False) for n in range(4)] + [("erin", "room-20", True, True)]
    themed(loop, drafts("chat", more, START + timedelta(hours=1), prefix="x"))
    answer = api.get(f"/api/v1/themes/{theme_id}/champions", headers=ADMIN)
    assert answer.status_code == 200
    listed = [champion["author"] for champion in answer.json()["champions"]]
    assert len(listed) == 5 and pseudonym(loop, "erin") not in listed
    wide = api.get(f"/api/v1/themes/{theme_id}/champions?limit=50", headers=ADMIN).json()["champions"]
    assert len(wide) == 8 and pseudonym(loop, "erin") not in [c["author"] for c in wide]
    assert api.get("/api/v1/themes/999/champions", headers=ADMIN).status_code == 404


def test_an_invitation_goes_once_into_the_authors_own_thread(api: TestClient, rooms: Rooms,
                                                             community: tuple[FeedbackLoop, int]) -> None:
    loop, theme_id = community
    alice = pseudonym(loop, "alice")
    url = f"/api/v1/themes/{theme_id}/champions/{alice}/invitations"
    sent = api.post(url, json={"kind": "design_review"}, headers=ADMIN)
    assert sent.status_code == 201, sent.text
    assert sent.json()["state"] == "sent" and sent.json()["channel"] == "chat" and sent.json()["answer"] is None
    [request] = rooms.posted
    assert request.thread_id == "room-1" and request.channel_name == "chat"  # the thread she opened
    assert "Dark mode on mobile" in request.text and "design review" in request.text
    assert f"/themes/{theme_id}" in request.text and "@" not in request.text
    again = api.post(url, json={"kind": "beta"}, headers=ADMIN)
    assert again.status_code == 409 and "invited" in again.json()["detail"]
    assert len(rooms.posted) == 1
    entries = audit(loop, "invite_champion") + audit(loop, "send_champion_invitation")
    assert [(e.entity_type, e.entity_id, e.details.get("state")) for e in entries] == [
        ("theme", str(theme_id), None), ("theme", str(theme_id), "sent")]
    assert all(alice not in str(entry.details) for entry in entries)
    listed = api.get(f"/api/v1/themes/{theme_id}/champions", headers=ADMIN).json()
    line = next(c for c in listed["champions"] if c["author"] == alice)
    assert line["can_invite"] is False and line["invitation"]["state"] == "sent"
    assert [row["author"] for row in listed["invitations"]] == [alice]


def test_channels_without_replies_refuse_the_invitation(api: TestClient, community: tuple[FeedbackLoop, int],
                                                        rooms: Rooms) -> None:
    loop, theme_id = community
    with loop.session() as session:
        add_channel(loop, session, "forms", "webhook")
    themed(loop, drafts("forms", [("gina", "form-1", True, False)] * 3, prefix="f"))
    gina = pseudonym(loop, "gina")
    refused = api.post(f"/api/v1/themes/{theme_id}/champions/{gina}/invitations", json={"kind": "beta"},
                       headers=ADMIN)
    assert refused.status_code == 409 and "replies capability" in refused.json()["detail"]
    assert rooms.posted == []
    with loop.session() as session:
        assert session.scalars(select(ChampionInvitation)).all() == []
    line = next(c for c in api.get(f"/api/v1/themes/{theme_id}/champions?limit=50", headers=ADMIN).json()["champions"]
                if c["author"] == gina)
    assert line["can_invite"] is False and "replies capability" in line["why_not"]


def test_bad_invitations_are_clear_4xx(api: TestClient, community: tuple[FeedbackLoop, int]) -> None:
    loop, theme_id = community
    base = f"/api/v1/themes/{theme_id}/champions"
    assert api.post(f"{base}/{pseudonym(loop, 'alice')}/invitations", json={"kind": "party"},
                    headers=ADMIN).status_code == 422
    assert api.post(f"{base}/not-a-pseudonym/invitations", json={"kind": "beta"}, headers=ADMIN).status_code == 422
    staff = api.post(f"{base}/{pseudonym(loop, 'erin')}/invitations", json={"kind": "beta"}, headers=ADMIN)
    assert staff.status_code == 404 and "staff" in staff.json()["detail"]
    assert api.post(f"/api/v1/themes/999/champions/{pseudonym(loop, 'alice')}/invitations", json={"kind": "beta"},
                    headers=ADMIN).status_code == 404
    early = api.post(f"{base}/{pseudonym(loop, 'bob')}/invitations/answer", json={"answer": "accepted"},
                     headers=ADMIN)
    assert early.status_code == 404


def test_erased_authors_are_never_invited(api: TestClient, rooms: Rooms, community: tuple[FeedbackLoop, int]) -> None:
    loop, theme_id = community
    bob = pseudonym(loop, "bob")
    with loop.session() as session:
        forget_author(session, "bob", pseudonyms=loop.pseudonyms)
    # Bob writes again after his erasure: his pseudonym is the same, and he is still never a champion.
    themed(loop, drafts("chat", [("bob", "room-9", True, False)] * 4, START + timedelta(days=1), prefix="b"))
    refused = api.post(f"/api/v1/themes/{theme_id}/champions/{bob}/invitations", json={"kind": "interview"},
                       headers=ADMIN)
    assert refused.status_code == 409 and "erased" in refused.json()["detail"]
    listed = api.get(f"/api/v1/themes/{theme_id}/champions?limit=50", headers=ADMIN).json()
    assert bob not in [c["author"] for c in listed["champions"]] and rooms.posted == []


def test_an_author_erased_before_the_send_gets_nothing_and_keeps_nothing(rooms: Rooms,
                                                                         community: tuple[FeedbackLoop, int]) -> None:
    loop, theme_id = community
    with loop.session() as session:
        row = invite(loop, session, theme_id, pseudonym(loop, "carol"), "beta", "key:pm")
        row_id = row.id
    with loop.session() as session:
        forget_author(session, "carol", pseudonyms=loop.pseudonyms)
    after = send_invitation(loop, row_id, "key:pm")
    assert rooms.posted == [] and after.state == "erased"
    assert (after.author_pseudonym, after.thread_ref, after.answer) == (None, None, None)
    # The erasure scrubbed the row itself (audited as forget_author): the send found nothing to attempt.
    assert audit(loop, "send_champion_invitation") == [] and len(audit(loop, "forget_author")) == 1


def test_erasure_leaves_no_personal_data_in_answered_invitations(api: TestClient,
                                                                 community: tuple[FeedbackLoop, int]) -> None:
    loop, theme_id = community
    dave = pseudonym(loop, "dave")
    base = f"/api/v1/themes/{theme_id}/champions/{dave}/invitations"
    assert api.post(base, json={"kind": "interview"}, headers=ADMIN).status_code == 201
    assert api.post(f"{base}/answer", json={"answer": "accepted"}, headers=ADMIN).status_code == 200
    with loop.session() as session:
        forget_author(session, "dave", pseudonyms=loop.pseudonyms)
    with loop.session() as session:  # scrubbed by the erasure itself, before anyone lists the champions
        stored = session.scalars(select(ChampionInvitation)).one()
        assert (stored.author_pseudonym, stored.thread_ref, stored.reply_ref, stored.answered_by) == (None,) * 4
    [row] = api.get(f"/api/v1/themes/{theme_id}/champions", headers=ADMIN).json()["invitations"]
    assert row["state"] == "erased" and row["author"] is None and row["answer"] is None
    assert dave not in str([entry.details for entry in audit(loop, "record_champion_answer")])


def test_answers_are_recorded_as_consent_and_every_change_audited(api: TestClient,
                                                                  community: tuple[FeedbackLoop, int]) -> None:
    loop, theme_id = community
    bob = pseudonym(loop, "bob")
    base = f"/api/v1/themes/{theme_id}/champions/{bob}/invitations"
    assert api.post(base, json={"kind": "beta"}, headers=ADMIN).status_code == 201
    accepted = api.post(f"{base}/answer", json={"answer": "accepted"}, headers=ADMIN)
    assert accepted.status_code == 200
    body = accepted.json()
    assert body["answer"] == "accepted" and body["answered_by"] == "key:FEEDBACKLOOP_ADMIN_KEY"
    assert body["answered_at"] is not None
    assert api.post(f"{base}/answer", json={"answer": "accepted"}, headers=ADMIN).json()["answer"] == "accepted"
    assert api.post(f"{base}/answer", json={"answer": "declined"}, headers=ADMIN).json()["answer"] == "declined"
    assert api.post(f"{base}/answer", json={"answer": "maybe"}, headers=ADMIN).status_code == 422
    changes = [(e.details["from"], e.details["to"]) for e in audit(loop, "record_champion_answer")]
    assert changes == [(None, "accepted"), ("accepted", "declined")]  # the repeated "accepted" changed nothing


def test_a_failed_send_is_tried_again_but_a_sending_one_never(api: TestClient, rooms: Rooms,
                                                              community: tuple[FeedbackLoop, int]) -> None:
    loop, theme_id = community
    alice, carol = pseudonym(loop, "alice"), pseudonym(loop, "carol")
    rooms.failures = 1
    url = f"/api/v1/themes/{theme_id}/champions/{alice}/invitations"
    failed = api.post(url, json={"kind": "beta"}, headers=ADMIN).json()
    assert failed["state"] == "failed" and "did not answer" in failed["last_error"] and rooms.posted == []
    assert api.post(f"{url}/answer", json={"answer": "accepted"}, headers=ADMIN).status_code == 409
    retried = api.post(url, json={"kind": "beta"}, headers=ADMIN).json()
    assert retried["state"] == "sent" and retried["attempts"] == 2 and len(rooms.posted) == 1
    # A send cut off mid-call (a crash) leaves "sending": it is never posted again, by anyone.
    with loop.session() as session:
        row = invite(loop, session, theme_id, carol, "beta", "key:pm")
        row.state = "sending"
        row_id = row.id
    assert send_invitation(loop, row_id, "key:pm").state == "sending" and len(rooms.posted) == 1
    stuck = api.post(f"/api/v1/themes/{theme_id}/champions/{carol}/invitations", json={"kind": "beta"}, headers=ADMIN)
    assert stuck.status_code == 409 and len(rooms.posted) == 1


def test_the_template_is_checked_and_used(api: TestClient, rooms: Rooms, community: tuple[FeedbackLoop, int]) -> None:
    loop, theme_id = community
    template = "/api/v1/champions/invitation-template"
    assert "$kind" in api.get(template, headers=ADMIN).json()["template"]
    for bad in ("Hello @alice, join our $kind", "Join $what", "  "):
        assert api.put(template, json={"template": bad}, headers=ADMIN).status_code == 422
    mail = "Join our $kind on $theme! Write to pm@example.com. $link"
    assert api.put(template, json={"template": mail}, headers=ADMIN).status_code == 200
    assert audit(loop, "set_invitation_template")[-1].details["to"] == mail
    api.post(f"/api/v1/themes/{theme_id}/champions/{pseudonym(loop, 'dave')}/invitations", json={"kind": "interview"},
             headers=ADMIN)
    assert rooms.posted[0].text == (f"Join our interview on Dark mode on mobile! Write to pm@example.com. "
                                    f"http://127.0.0.1:8000/themes/{theme_id}")


def test_reading_needs_read_and_inviting_needs_pm(api: TestClient, community: tuple[FeedbackLoop, int]) -> None:
    loop, theme_id = community
    with loop.session() as session:
        keys = {scope: {"Authorization": f"Bearer {create_api_key(session, f'{scope}-key', [scope])}"}
                for scope in ("read", "pm", "intake")}
    listing = f"/api/v1/themes/{theme_id}/champions"
    invitation = f"{listing}/{pseudonym(loop, 'bob')}/invitations"
    assert api.get(listing, headers=keys["read"]).status_code == 200
    assert api.get(listing, headers=keys["intake"]).status_code == 403
    assert api.post(invitation, json={"kind": "beta"}, headers=keys["read"]).status_code == 403
    assert api.put("/api/v1/champions/invitation-template", json={"template": "$kind"},
                   headers=keys["read"]).status_code == 403
    made = api.post(invitation, json={"kind": "beta"}, headers=keys["pm"])
    assert made.status_code == 201 and made.json()["invited_by"] == "key:pm-key"
    assert api.post(f"{invitation}/answer", json={"answer": "declined"}, headers=keys["read"]).status_code == 403


def test_a_discourse_champion_is_invited_in_their_topic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_KEY_ENV, "forum-key")
    forum = DiscourseApi()
    loop = make_loop(f"sqlite:///{tmp_path / 'discourse.db'}")
    try:
        with loop.session() as session:
            add_channel(loop, session, "community", "discourse",
                        options={"reply_url": forum.url, "reply_api_key_env": API_KEY_ENV})
        posts = [ItemDraft(text=f"dark mode for the mobile app please ({n})", channel="community",
                           external_id="topic-101" if n == 0 else f"post-{n}", author="hana" if n < 3 else f"u{n}",
                           created_at=START + timedelta(minutes=n),
                           metadata={"topic_id": 101, "thread": "topic-101", "opens_thread": n == 0})
                 for n in range(5)]
        theme_id = themed(loop, posts)
        with loop.session() as session:
            row = invite(loop, session, theme_id, pseudonym(loop, "hana"), "beta", "key:pm")
            row_id = row.id
        assert send_invitation(loop, row_id, "key:pm").state == "sent"
        assert forum.rejected == [] and [post["topic_id"] for post in forum.posts] == [101]
        assert "beta" in forum.posts[0]["raw"]
        with loop.session() as session:
            assert session.get(ChampionInvitation, row_id).reply_ref == "500"  # type: ignore[union-attr]
    finally:
        forum.server.shutdown()
        forum.server.server_close()
        loop.close()


def test_the_migration_downgrades_and_upgrades(community: tuple[FeedbackLoop, int]) -> None:
    loop, _ = community
    with migrations(loop.engine) as schema:
        schema.down("0008")
        assert "champion_invitations" not in schema.tables()
        schema.up()
        assert "champion_invitations" in schema.tables()


def test_a_merge_does_not_let_anyone_be_invited_twice(api: TestClient, rooms: Rooms,
                                                      community: tuple[FeedbackLoop, int]) -> None:
    from core.themes.review import merge_themes

    loop, first = community
    second = themed(loop, drafts("chat", [("alice", "room-7", True, False)] * 2, START + timedelta(days=2), "n"),
                    label="Night reading")
    alice = pseudonym(loop, "alice")
    assert api.post(f"/api/v1/themes/{first}/champions/{alice}/invitations", json={"kind": "beta"},
                    headers=ADMIN).status_code == 201
    with loop.session() as session:
        merge_themes(loop, session, first, second, actor="key:pm")
    merged_away = api.post(f"/api/v1/themes/{first}/champions/{alice}/invitations", json={"kind": "beta"},
                           headers=ADMIN)
    assert merged_away.status_code == 409 and "merged" in merged_away.json()["detail"]
    again = api.post(f"/api/v1/themes/{second}/champions/{alice}/invitations", json={"kind": "beta"}, headers=ADMIN)
    assert again.status_code == 409 and len(rooms.posted) == 1
    listed = api.get(f"/api/v1/themes/{second}/champions", headers=ADMIN).json()
    assert [row["author"] for row in listed["invitations"]] == [alice]
    assert api.post(f"/api/v1/themes/{second}/champions/{alice}/invitations/answer", json={"answer": "accepted"},
                    headers=ADMIN).json()["answer"] == "accepted"


def test_the_whole_flow_on_each_database(database_url: str, rooms: Rooms) -> None:
    from core.community.invitations import champion_lines, record_answer

    loop = make_loop(database_url)
    try:
        loop.pm.register(rooms, name="rooms-plugin")
        with loop.session() as session:
            add_channel(loop, session, "chat", "rooms")
        theme_id = themed(loop, drafts("chat", CONVERSATION))
        with loop.session() as session:
            assert [c.pseudonym for c in theme_champions(session, theme_id)][:2] == [pseudonym(loop, "alice"),
                                                                                     pseudonym(loop, "dave")]
            row_id = invite(loop, session, theme_id, pseudonym(loop, "alice"), "beta", "key:pm").id
        assert send_invitation(loop, row_id, "key:pm").state == "sent"
        assert send_invitation(loop, row_id, "key:pm").state == "sent" and len(rooms.posted) == 1
        with loop.session() as session:
            assert record_answer(session, theme_id, pseudonym(loop, "alice"), "accepted", "key:pm").answer == "accepted"
        with loop.session() as session:
            forget_author(session, "alice", pseudonyms=loop.pseudonyms)
        with loop.session() as session:
            lines, [row] = champion_lines(loop, session, theme_id)
            assert (row.state, row.author_pseudonym, row.answer) == ("erased", None, None)
            assert pseudonym(loop, "alice") not in [line.champion.pseudonym for line in lines]
    finally:
        loop.close()


def test_threads_whose_opener_was_deleted_are_not_used(api: TestClient, rooms: Rooms,
                                                       community: tuple[FeedbackLoop, int]) -> None:
    from core.intake.ingest import delete_items

    loop, theme_id = community
    with loop.session() as session:
        delete_items(session, "chat", ["m1", "m2"])  # alice's room-1 and bob's room-2 openers, deleted at the source
    alice, carol = pseudonym(loop, "alice"), pseudonym(loop, "carol")
    moved = api.post(f"/api/v1/themes/{theme_id}/champions/{alice}/invitations", json={"kind": "beta"}, headers=ADMIN)
    assert moved.status_code == 201 and rooms.posted[0].thread_id == "room-0"  # her own threads are gone
    refused = api.post(f"/api/v1/themes/{theme_id}/champions/{carol}/invitations", json={"kind": "beta"},
                       headers=ADMIN)
    assert refused.status_code == 409 and "opener was erased" in refused.json()["detail"] and len(rooms.posted) == 1
