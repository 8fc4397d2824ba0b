"""The community metadata the vitality figures read (issue 16): Discourse and GitHub fill "thread",
"opens_thread" and "staff"; staff posts are stored for the figures but never join a theme."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from core.intake.channels import add_channel
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import FeedbackItem, ThemeMembership
from core.themes.incremental import assign_new_items
from core.themes.triage import triage_queue
from core.types import ItemDraft
from tests.support.intake import (
    DISCOURSE_SECRET,
    GITHUB_SECRET,
    discourse_capture,
    discourse_delivery,
    github_delivery,
    github_payload,
    items,
)
from tests.support.themes import CHECKOUT, build_themes

COMMUNITY_KEYS = ("thread", "opens_thread", "staff")


def community(item: FeedbackItem) -> dict[str, object]:
    return {key: item.metadata_json[key] for key in COMMUNITY_KEYS if key in item.metadata_json}


def test_discourse_posts_say_their_topic_whether_they_open_it_and_whether_staff_wrote_them(
        client: TestClient, loop: FeedbackLoop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORUM_SECRET", DISCOURSE_SECRET)
    with loop.session() as session:
        add_channel(loop, session, "forum", "discourse", secret_env="FORUM_SECRET")
        add_channel(loop, session, "nostaff", "discourse", secret_env="FORUM_SECRET", options={"exclude_staff": "true"})
    capture = discourse_capture("post_created.fedora.json")  # post 3 of topic 46582, staff/admin/moderator false
    for channel, changes in (("forum", {"raw": "A reply from the community."}),
                             ("forum", {"raw": "The opening post, by a moderator.", "post_number": 1, "moderator": True,
                                        "id": 79000}),
                             ("nostaff", {"raw": "A reply where staff posts are dropped."})):
        body, headers = discourse_delivery(capture, body_changes=changes)
        assert client.post(f"/webhooks/{channel}", content=body, headers=headers).status_code == 202
    reply, opening, elsewhere = items(loop)
    assert (reply.external_id, community(reply)) == (
        "post-79563", {"thread": "topic-46582", "opens_thread": False, "staff": False})
    assert (opening.external_id, community(opening)) == (
        "topic-46582", {"thread": "topic-46582", "opens_thread": True, "staff": True})
    # A channel that drops staff posts says nothing of staff (rather than that nobody is).
    assert community(elsewhere) == {"thread": "topic-46582", "opens_thread": False}


def test_discourse_topic_event_opens_its_thread(client: TestClient, loop: FeedbackLoop,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORUM_SECRET", DISCOURSE_SECRET)
    with loop.session() as session:
        add_channel(loop, session, "forum", "discourse", secret_env="FORUM_SECRET")
    body, headers = discourse_delivery(discourse_capture("topic_created.fedora.json"))
    assert client.post("/webhooks/forum", content=body, headers=headers).status_code == 202
    [topic] = items(loop)
    assert community(topic) == {"thread": topic.external_id, "opens_thread": True}


def test_github_issues_and_comments_say_their_thread_and_the_team(client: TestClient, loop: FeedbackLoop,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GH_SECRET", GITHUB_SECRET)
    with loop.session() as session:
        add_channel(loop, session, "gh", "github", secret_env="GH_SECRET")
        add_channel(loop, session, "gh-public", "github", secret_env="GH_SECRET", options={"exclude_members": "true"})
    issue = github_payload("issues.opened.payload.json")  # Codertocat/Hello-World#1 by its OWNER
    comment = json.loads(github_payload("issue_comment.created.payload.json"))
    comment["comment"]["author_association"] = "NONE"  # a customer's comment on issue 1
    comment_body = json.dumps(comment).encode()
    comment["comment"]["body"] = "The same customer, in the repository that drops members' posts."
    public_body = json.dumps(comment).encode()  # another text: the same words would be one item seen twice
    for channel, event, body, delivery in (("gh", "issues", issue, "d1"), ("gh", "issue_comment", comment_body, "d2"),
                                           ("gh-public", "issue_comment", public_body, "d3")):
        answer = client.post(f"/webhooks/{channel}", content=body, headers=github_delivery(event, body, delivery))
        assert answer.status_code == 202, answer.text
    opened, replied, public = items(loop)
    assert community(opened) == {"thread": "Codertocat/Hello-World#1", "opens_thread": True, "staff": True}
    assert community(replied) == {"thread": "Codertocat/Hello-World#1", "opens_thread": False, "staff": False}
    assert community(public) == {"thread": "Codertocat/Hello-World#1", "opens_thread": False}


def test_staff_posts_are_kept_out_of_themes(loop: FeedbackLoop) -> None:
    staff_answers = [f"{text} thanks for reporting" for text in CHECKOUT[:4]]  # words like the customers'
    with loop.session() as session:
        ingest(loop, session, [ItemDraft(text=text, channel="forum", external_id=f"staff-{n}", author="agent",
                                         metadata={"staff": True, "thread": f"t{n}", "opens_thread": False})
                               for n, text in enumerate(staff_answers)])
    build_themes(loop, CHECKOUT)  # the customers' posts, then embed and re-cluster everything
    with loop.session() as session:
        session.add(FeedbackItem(channel="forum", external_id="staff-late", text_original=CHECKOUT[0] + " noted",
                                 text_redacted=CHECKOUT[0] + " noted", metadata_json={"staff": True}))
    with loop.session() as session:
        assign_new_items(loop, session)  # the worker's incremental step leaves it out too
    with loop.session() as session:
        themed = set(session.scalars(select(FeedbackItem.external_id)
                                     .join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)))
        staff = set(session.scalars(select(FeedbackItem.external_id).where(FeedbackItem.channel == "forum")))
        unplaced = {entry.item_id for entry in triage_queue(session) if entry.kind == "unplaced"}
        staff_ids = set(session.scalars(select(FeedbackItem.id).where(FeedbackItem.channel == "forum")))
    assert themed and not themed & staff
    assert len(staff) == 5  # stored, for the community figures
    assert not unplaced & staff_ids  # and not offered in triage as feedback waiting for a theme


def test_threads_staff_open_and_internal_feedback_are_themed(loop: FeedbackLoop) -> None:
    """Only staff *answers* stay out: an issue a team member files, or a colleague's Slack message, is feedback."""
    with loop.session() as session:
        ingest(loop, session, [
            ItemDraft(text=CHECKOUT[0] + " filed for a customer", channel="gh", external_id="issue-1", author="member",
                      metadata={"staff": True, "thread": "o/r#1", "opens_thread": True}),
            ItemDraft(text=CHECKOUT[1] + " from sales", channel="slack", external_id="m-1", author="colleague",
                      metadata={"internal": True}),
        ])
    build_themes(loop, CHECKOUT)
    with loop.session() as session:
        themed = set(session.scalars(select(FeedbackItem.external_id)
                                     .join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id)))
    assert {"issue-1", "m-1"} <= themed
