"""The typed plugin contract: optional capabilities of channel and target types, the deprecated hook, the
hookspecs' real types, and credentials read in one way."""

from __future__ import annotations

import typing
import warnings
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core import hookimpl, hookspecs, types
from core.errors import ConfigurationError
from core.intake.channels import add_channel
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import LoopReply, Theme
from core.plugin_manager import make_plugin_manager
from core.routing.replies import send_loop_replies
from core.secrets import env_secret, secret_from_env
from core.settings import Settings
from core.themes.build import embed_pending, recluster
from core.themes.review import update_theme
from core.types import (
    ChannelType,
    IntakeResult,
    ItemDraft,
    ReplyRequest,
    StoredItem,
    TargetType,
    ThreadReplies,
    TrackerStatusEvent,
    WebhookRequest,
)
from plugins import discourse_reply, github_reply

TEXTS = [f"checkout payment card declined again at the till {day}"
         for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "morning")]


class ForumWithReplies:
    """A channel type that answers in its own threads: it alone knows how its threads are named."""

    def __init__(self) -> None:
        self.posted: list[ReplyRequest] = []

    def thread_of(self, item: StoredItem) -> str | None:
        return item.external_id.split("/")[0]  # "room-1/message-3" is in thread "room-1"

    def post(self, request: ReplyRequest) -> str:
        self.posted.append(request)
        return f"answer-{len(self.posted)}"

    @hookimpl
    def register_channel_types(self, register: Any) -> None:
        register(ChannelType(name="rooms", description="Rooms", handle_webhook=lambda _r: IntakeResult(),
                             replies=ThreadReplies(thread_of=self.thread_of, post=self.post,
                                                   opener_id=lambda room: f"{room}/message-0")))


def declined_theme(loop: FeedbackLoop, channel: str, external_ids: list[str]) -> None:
    with loop.session() as session:
        ingest(loop, session, [ItemDraft(text=text, channel=channel, external_id=external_id)
                               for text, external_id in zip(TEXTS, external_ids, strict=True)])
        embed_pending(loop, session)
        recluster(loop, session)
        theme = session.scalars(select(Theme)).one()
        update_theme(loop, session, theme.id, "pm", status="declined")


def test_a_channel_types_replies_capability_answers_each_thread_once(loop: FeedbackLoop) -> None:
    forum = ForumWithReplies()
    loop.pm.register(forum, name="rooms-plugin")
    with loop.session() as session:
        add_channel(loop, session, "support-rooms", "rooms")
    ids = [f"room-{n % 3}/message-{n}" for n in range(len(TEXTS))]
    declined_theme(loop, "support-rooms", ids)
    assert send_loop_replies(loop) == 3 and send_loop_replies(loop) == 0
    assert sorted(request.thread_id for request in forum.posted) == ["room-0", "room-1", "room-2"]
    assert all("declined" in request.text and request.channel_type == "rooms" for request in forum.posted)


def test_a_thread_whose_opener_was_deleted_gets_no_reply(loop: FeedbackLoop) -> None:
    from core.intake.ingest import delete_items

    forum = ForumWithReplies()
    loop.pm.register(forum, name="rooms-plugin")
    with loop.session() as session:
        add_channel(loop, session, "support-rooms", "rooms")
    declined_theme(loop, "support-rooms", [f"room-{n % 2}/message-{n}" for n in range(len(TEXTS))])
    with loop.session() as session:
        delete_items(session, "support-rooms", ["room-0/message-0"])  # the opener of room-0
    assert send_loop_replies(loop) == 1
    assert [request.thread_id for request in forum.posted] == ["room-1"]
    with loop.session() as session:
        states = {reply.thread_ref: reply.state for reply in session.scalars(select(LoopReply))}
    assert states == {"room-0": "skipped_erased", "room-1": "sent"}


def test_registering_the_deprecated_reply_hook_warns() -> None:
    class Legacy:
        @hookimpl
        def reply_to_thread(self, request: ReplyRequest) -> str | None:
            return None

    pm = make_plugin_manager(load_installed=False)
    with pytest.warns(DeprecationWarning, match="reply_to_thread hook is deprecated"):
        pm.register(Legacy(), name="legacy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_plugin_manager(load_installed=False)  # no built-in uses it any more


def test_built_in_channels_name_their_own_threads() -> None:
    topic = StoredItem(channel="forum", external_id="post-9", url=None, metadata={"topic_id": 42})
    assert discourse_reply.thread_of(topic) == "42" and discourse_reply.opener_id("42") == "topic-42"
    issue = StoredItem(channel="repo", external_id="issues-1", url=None,
                       metadata={"repository": "acme/app", "number": 7, "github_event": "issues"})
    discussion = StoredItem(channel="repo", external_id="discussion-1", url=None,
                            metadata={"repository": "acme/app", "number": 3, "github_event": "discussion"})
    assert github_reply.thread_of(issue) == "acme/app#7" and github_reply.thread_of(discussion) is None


def test_a_discourse_reply_never_goes_to_a_host_taken_from_an_item() -> None:
    request = ReplyRequest(channel_name="forum", channel_type="discourse", options={"reply_api_key_env": "X"},
                           secret=None, thread_id="42", url="https://evil.example/t/x/42",
                           metadata={"discourse_instance": "https://evil.example"}, text="Thanks")
    with pytest.raises(ConfigurationError, match="reply_url"):
        discourse_reply.post_reply(request)


def test_hookspec_annotations_are_the_real_types() -> None:
    namespace = {**vars(types), "Settings": Settings, "Callable": typing.Callable}
    for name in ("register_channel_types", "enrich_item", "choose_owner", "reply_to_thread"):
        hints = typing.get_type_hints(getattr(hookspecs, name), globalns=namespace)
        assert hints and all(hint is not Any for hint in hints.values()), name
    assert typing.get_type_hints(hookspecs.enrich_item, globalns=namespace)["item"] is ItemDraft


def test_secrets_come_from_the_variable_an_option_names(monkeypatch: pytest.MonkeyPatch) -> None:
    # Options may name only variables the operator allowed (FEEDBACKLOOP_SECRET_* by default).
    monkeypatch.setenv("FEEDBACKLOOP_SECRET_TEST_TOKEN", "t0ken")
    monkeypatch.delenv("FEEDBACKLOOP_SECRET_TEST_UNSET", raising=False)
    settings = Settings()
    assert secret_from_env({"token_env": "FEEDBACKLOOP_SECRET_TEST_TOKEN"}, "token_env", "x", settings) == "t0ken"
    with pytest.raises(ConfigurationError, match=r"'token_env' option and \$FEEDBACKLOOP_SECRET_TEST_UNSET set"):
        secret_from_env({"token_env": "FEEDBACKLOOP_SECRET_TEST_UNSET"}, "token_env", "the tracker", settings)
    with pytest.raises(ConfigurationError, match="'token_env'"):
        secret_from_env({}, "token_env", "the tracker", settings)
    assert env_secret(None) is None and env_secret("FEEDBACKLOOP_SECRET_TEST_UNSET") is None


def test_a_target_types_status_webhook_gets_its_own_endpoint(loop: FeedbackLoop, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[WebhookRequest] = []

    def status_webhook(request: WebhookRequest) -> TrackerStatusEvent:
        seen.append(request)
        return TrackerStatusEvent(ignored="nothing to do")

    class Tracker:
        @hookimpl
        def register_target_types(self, register: Any) -> None:
            register(TargetType(name="kanban", description="Kanban", deliver=lambda _r: None,  # type: ignore[arg-type,return-value]
                                status_webhook=status_webhook))

    loop.pm.register(Tracker(), name="kanban-plugin")
    with TestClient(create_app(loop.settings, loop=loop)) as client:
        unset = client.post("/trackers/kanban/webhook", content=b"{}")
        assert unset.status_code == 503 and unset.json()["error"] == "configuration_error"
        assert "FEEDBACKLOOP_KANBAN_WEBHOOK_SECRET" in unset.json()["detail"]
        monkeypatch.setenv("FEEDBACKLOOP_KANBAN_WEBHOOK_SECRET", "s3cret")
        response = client.post("/trackers/kanban/webhook", content=b"{}", headers={"X-Thing": "1"})
        assert response.status_code == 202 and response.json() == {"status": "ignored", "reason": "nothing to do"}
        assert seen[0].secret == "s3cret" and seen[0].headers["x-thing"] == "1"
        unknown = client.post("/trackers/inbox/webhook", content=b"{}")
        assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
