"""Closing the loop: a theme marked done gets one reply per original thread on a local
Discourse-API-shaped server, none to threads whose authors were erased, once per theme, with the
admin's template and nobody's personal data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core.intake.channels import add_channel
from core.intake.erasure import forget_author
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import LoopReply, Theme
from core.routing.replies import send_loop_replies
from core.themes.build import embed_pending, recluster
from core.themes.review import update_theme
from core.types import ItemDraft
from tests.support.http_fakes import JsonHandler, serve
from tests.support.loops import make_loop

API_KEY_ENV = "FEEDBACKLOOP_TEST_DISCOURSE_KEY"


class DiscourseApi:
    """``POST /posts.json`` as Discourse answers it; checks the headers and the body like Discourse does."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        owner = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.read_json()
                problems = []
                if self.path != "/posts.json":
                    problems.append(f"unknown path {self.path}")
                if self.headers.get("Api-Key") != "forum-key" or not self.headers.get("Api-Username"):
                    problems.append("bad Api-Key / Api-Username")
                if not isinstance(body.get("topic_id"), int) or len(str(body.get("raw", ""))) < 20:
                    problems.append("topic_id must be an integer and raw at least 20 characters")
                status, answer = (422, {"errors": problems}) if problems else (200, {
                    "id": 500 + len(owner.posts), "topic_id": body["topic_id"], "post_number": 2, "raw": body["raw"]})
                (owner.rejected.extend(problems) if problems else owner.posts.append(body))
                self.send_json(status, answer)

        self.server, self.url = serve(Handler)


@pytest.fixture
def forum(monkeypatch: pytest.MonkeyPatch) -> Iterator[DiscourseApi]:
    monkeypatch.setenv(API_KEY_ENV, "forum-key")
    api = DiscourseApi()
    yield api
    api.server.shutdown()
    api.server.server_close()


def seeded_loop(tmp_path: Path, forum: DiscourseApi) -> FeedbackLoop:
    loop = make_loop(f"sqlite:///{tmp_path / 'loop.db'}")
    with loop.session() as session:
        add_channel(loop, session, "community", "discourse",
                    options={"reply_url": forum.url, "reply_api_key_env": API_KEY_ENV})
        drafts = []
        # Topic 101: three people; topic 102: two; topic 103 was opened by fay, who asked to be forgotten,
        # and gus replied in it; topic 104 is all fay's.
        threads = ((101, ["ann", "bob", "cy"]), (102, ["dee", "eve"]), (103, ["fay", "gus"]), (104, ["fay", "fay"]))
        for topic, authors in threads:
            for number, author in enumerate(authors):
                drafts.append(ItemDraft(
                    text=f"please add dark mode to the mobile app, my eyes hurt at night ({topic}-{number}) "
                         f"write to {author}@example.com",
                    channel="community", external_id=f"topic-{topic}" if number == 0 else f"post-{topic}-{number}",
                    author=author, metadata={"topic_id": topic}))
        ingest(loop, session, drafts)
        embed_pending(loop, session)
        recluster(loop, session)
        assert forget_author(session, "fay", pseudonyms=loop.pseudonyms).items == 3
    return loop


def test_done_theme_replies_once_per_thread_and_never_to_erased_authors(tmp_path: Path,
                                                                          forum: DiscourseApi) -> None:
    loop = seeded_loop(tmp_path, forum)
    with TestClient(create_app(loop.settings, loop=loop)) as client:
        auth = {"Authorization": f"Bearer {loop.settings.admin_key}"}
        bad = client.put("/api/v1/loop/reply-template", json={"template": "Hi $name"}, headers=auth)
        assert bad.status_code == 422 and "$theme, $status and $link" in bad.json()["detail"]
        response = client.put("/api/v1/loop/reply-template", headers=auth,
                              json={"template": "Update from the team: \"$theme\" is now $status. See $link"})
        assert response.status_code == 200
    with loop.session() as session:
        theme = session.scalars(select(Theme)).one()
        assert len(theme.memberships) == 6
        assert send_loop_replies(loop) == 0  # not done yet: nobody is told anything
        update_theme(loop, session, theme.id, actor="pm", status="done")
    assert send_loop_replies(loop) == 2
    assert send_loop_replies(loop) == 0  # once per theme
    with loop.session() as session:  # reopened and done again: still nobody is told twice
        update_theme(loop, session, theme.id, actor="pm", status="in_progress")
        update_theme(loop, session, theme.id, actor="pm", status="done")
    assert send_loop_replies(loop) == 0
    assert forum.rejected == []
    assert sorted(post["topic_id"] for post in forum.posts) == [101, 102]
    for post in forum.posts:
        assert post["raw"].startswith("Update from the team:") and "as done" in post["raw"]
        assert "example.com" not in post["raw"] and "@" not in post["raw"]
    with loop.session() as session:
        states = {reply.thread_ref: reply.state for reply in session.scalars(select(LoopReply))}
    assert states == {"101": "sent", "102": "sent", "103": "skipped_erased"}  # nothing at all for 104


class GitHubApi:
    """``POST /repos/{owner}/{repo}/issues/{number}/comments`` as GitHub answers it."""

    def __init__(self) -> None:
        self.comments: list[tuple[str, dict[str, Any]]] = []
        owner = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.read_json()
                ok = (self.headers.get("Authorization") == "Bearer gh-token" and self.path.endswith("/comments")
                      and set(body) == {"body"})
                if ok:
                    owner.comments.append((self.path, body))
                self.send_json(201 if ok else 401, {"id": 900 + len(owner.comments), "body": body.get("body")}
                               if ok else {"message": "Bad credentials"})

        self.server, self.url = serve(Handler)


def test_declined_theme_comments_once_on_each_github_issue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDBACKLOOP_TEST_GITHUB_TOKEN", "gh-token")
    github = GitHubApi()
    try:
        loop = make_loop(f"sqlite:///{tmp_path / 'gh.db'}")
        with loop.session() as session:
            add_channel(loop, session, "repo", "github",
                        options={"reply_api_url": github.url, "reply_token_env": "FEEDBACKLOOP_TEST_GITHUB_TOKEN",
                                 "reply_repositories": "acme/*"})
            ingest(loop, session, [ItemDraft(
                text=f"please add dark mode to the mobile app, my eyes hurt at night ({number}-{n})",
                channel="repo", external_id=f"c-{number}-{n}", author=f"dev{n}",
                metadata={"repository": "acme/app", "number": number, "github_event": "issue_comment"})
                for number in (7, 8) for n in range(3)])
            embed_pending(loop, session)
            recluster(loop, session)
            theme = session.scalars(select(Theme)).one()
            update_theme(loop, session, theme.id, actor="pm", status="declined")
        assert send_loop_replies(loop) == 2 and send_loop_replies(loop) == 0
    finally:
        github.server.shutdown()
        github.server.server_close()
    assert sorted(path for path, _ in github.comments) == ["/repos/acme/app/issues/7/comments",
                                                           "/repos/acme/app/issues/8/comments"]
    assert all("as declined" in body["body"] for _, body in github.comments)
