"""The plugin system: a third-party plugin end to end, entry-point discovery, and one test per hook."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest
from sqlalchemy import select

from core import hookimpl, hookspecs
from core.intake.channels import add_channel
from core.intake.ingest import ingest
from core.loop import ConfigurationError, FeedbackLoop
from core.models import FeedbackItem, Theme
from core.plugin_manager import (
    channel_types,
    embedders,
    make_plugin_manager,
    target_types,
)
from core.settings import Settings
from core.themes.build import embed_pending, recluster
from core.themes.review import update_theme
from core.types import (
    DeliveryRequest,
    ItemDraft,
    OwnerChoice,
    ThemeView,
    WebhookRequest,
)
from tests.plugins import throwaway
from tests.support.env import ADMIN_KEY
from tests.support.loops import HashEmbedder, make_loop
from tests.support.themes import CHECKOUT, LOGIN, build_themes


def hookspec_names() -> list[str]:
    return sorted(name for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
                  if getattr(function, f"{hookspecs.PROJECT_NAME}_spec", None) is not None)


def a_theme(theme_id: int = 1, keywords: tuple[str, ...] = ("card",), **overrides: Any) -> ThemeView:
    values: dict[str, Any] = dict(id=theme_id, label=" ".join(keywords), keywords=list(keywords), status="new",
                                  volume=6, share_of_voice=0.5, mean_sentiment=-0.4, kinds={"complaint": 6},
                                  channels={"api": 6}, quotes=[])
    values.update(overrides)
    return ThemeView(**values)


class Recorder:
    """A plugin object that records the theme events it sees."""

    def __init__(self) -> None:
        self.created: list[ThemeView] = []
        self.changed: list[tuple[ThemeView, str, str]] = []

    @hookimpl
    def theme_created(self, theme: ThemeView) -> None:
        self.created.append(theme)

    @hookimpl
    def theme_status_changed(self, theme: ThemeView, old_status: str, new_status: str) -> None:
        self.changed.append((theme, old_status, new_status))


@pytest.fixture(autouse=True)
def clear_sent() -> Iterator[None]:
    throwaway.SENT.clear()
    yield
    throwaway.SENT.clear()


# --- one test per hook ------------------------------------------------------------------------------------


def test_hook_register_channel_types() -> None:
    pm = make_plugin_manager(load_installed=False)
    built_in = {"webhook", "discourse", "github", "slack", "teams", "zendesk", "intercom", "feed", "app_store",
                "reddit", "mastodon"}
    assert set(channel_types(pm)) == built_in
    pm.register(throwaway)
    types = channel_types(pm)
    assert set(types) == built_in | {"throwaway"}
    handle = types["throwaway"].handle_webhook
    request = WebhookRequest(channel_name="chat", headers={}, options={}, secret=None,
                             body=b'{"messages": [{"id": 7, "body": "the app is slow"}]}')
    result = handle(request)
    assert [(d.text, d.external_id, d.channel) for d in result.items] == [("the app is slow", "7", "chat")]
    noise = WebhookRequest(channel_name="chat", headers={}, options={}, secret=None, body=b'{"event": "noise"}')
    assert handle(noise).items == [] and handle(noise).ignored == "noise event"

    class Wrong:
        @hookimpl
        def register_channel_types(self, register: Any) -> None:
            register("not a ChannelType")

    pm.register(Wrong())
    with pytest.raises(TypeError, match="expected a ChannelType"):
        channel_types(pm)


def test_hook_register_target_types() -> None:
    pm = make_plugin_manager(load_installed=False)
    built_in = {"inbox", "jira", "redmine", "chat_webhook", "email"}
    assert set(target_types(pm)) == built_in
    pm.register(throwaway)
    types = target_types(pm)
    assert set(types) == built_in | {"memo"}
    request = DeliveryRequest(theme=a_theme(), owner="ops", options={}, title="t", body="b",
                              idempotency_key="theme-1:memo:ops")
    assert types["memo"].deliver(request).external_ref == "memo-1"
    assert types["memo"].deliver(request).external_ref == "memo-2"
    assert all(sent is request for sent in throwaway.SENT) and len(throwaway.SENT) == 2
    assert types["inbox"].deliver(request).external_ref == "inbox:theme-1:memo:ops"
    # The target types are not channel types.
    assert "memo" not in channel_types(pm)


def test_hook_register_embedders(sqlite_url: str) -> None:
    pm = make_plugin_manager(load_installed=False)
    assert "minilm" in embedders(pm)  # only listed: its factory (which loads the model) is never called
    made: list[int] = []

    class FakeEmbedderPlugin:
        @hookimpl
        def register_embedders(self, register: Any) -> None:
            def factory(batch_size: int = 64) -> HashEmbedder:
                made.append(batch_size)
                return HashEmbedder()

            register("hash", factory)

    pm.register(FakeEmbedderPlugin())
    assert {"minilm", "hash"} <= set(embedders(pm))
    settings = Settings(database_url=sqlite_url, admin_key=ADMIN_KEY, load_plugins="", embedding_model="hash",
                        embed_batch_size=7)
    loop = FeedbackLoop(settings, pm=pm)
    try:
        embedder = loop.embedder
        assert isinstance(embedder, HashEmbedder)
        assert loop.embedder is embedder and made == [7]  # built once
        assert embedder.embed(["card declined"]).shape == (1, 64)
    finally:
        loop.close()

    unknown = FeedbackLoop(settings.model_copy(update={"embedding_model": "nope"}), pm=pm)
    try:
        with pytest.raises(ConfigurationError, match="unknown embedding model 'nope'"):
            _ = unknown.embedder
    finally:
        unknown.close()


def test_hook_enrich_item(loop: FeedbackLoop) -> None:
    seen_settings: list[Any] = []

    class Tagger:
        @hookimpl
        def enrich_item(self, item: ItemDraft, settings: Settings) -> None:
            seen_settings.append(settings)
            item.metadata["language"] = "en"
            if "please add" in item.text:
                item.kind = "idea"  # runs before the built-in kind rules, which only fill a missing kind

    loop.pm.register(Tagger())
    drafts = [ItemDraft(text="The app is broken, terrible! Write to jane.doe@example.com or call +44 20 7946 0958"),
              ItemDraft(text="please add dark mode, I hate the bright screen")]
    with loop.session() as session:
        report = ingest(loop, session, drafts)
    assert report.created == 2
    assert seen_settings == [loop.settings, loop.settings]
    with loop.session() as session:
        broken, dark = session.scalars(select(FeedbackItem).order_by(FeedbackItem.id)).all()
        assert "jane.doe@example.com" not in broken.text_redacted and "[EMAIL]" in broken.text_redacted
        assert "[PHONE]" in broken.text_redacted
        assert broken.text_original == drafts[0].text  # the original is kept
        assert broken.sentiment is not None and broken.sentiment < 0
        assert broken.kind == "complaint"
        assert broken.metadata_json == {"language": "en"}
        assert dark.kind == "idea" and dark.metadata_json == {"language": "en"}
        assert dark.sentiment is not None and -1 <= dark.sentiment <= 1


def test_hook_enrich_embedded(loop: FeedbackLoop) -> None:
    seen: list[tuple[list[str], Any, str, Any]] = []

    class Rescorer:
        @hookimpl
        def enrich_embedded(self, items: list[ItemDraft], embeddings: Any, embedder: str, settings: Settings) -> None:
            seen.append(([item.text for item in items], embeddings, embedder, settings))
            for item in items:
                if "dark mode" in item.text:
                    item.kind, item.sentiment = "idea", 0.25

    loop.pm.register(Rescorer())
    texts = ["please make a dark mode", "The app is broken, terrible!"]
    with loop.session() as session:
        ingest(loop, session, [ItemDraft(text=text) for text in texts])
        at_intake = {item.text_original: (item.sentiment, item.kind) for item in session.scalars(select(FeedbackItem))}
        assert embed_pending(loop, session) == 2 and embed_pending(loop, session) == 0  # called for new vectors only
    assert len(seen) == 1
    passed, embeddings, embedder, settings = seen[0]
    assert passed == texts and embedder == "hash" and settings is loop.settings
    assert embeddings.shape == (2, 64) and embeddings.tolist() == HashEmbedder().embed(texts).tolist()
    with loop.session() as session:
        stored = {item.text_original: (item.sentiment, item.kind) for item in session.scalars(select(FeedbackItem))}
    assert stored == {texts[0]: (0.25, "idea"), texts[1]: at_intake[texts[1]]}


def test_hook_redact_item(loop: FeedbackLoop) -> None:
    class Masker:  # runs for re-sent drafts too, whose metadata merges in without enrichment
        @hookimpl
        def redact_item(self, item: ItemDraft) -> None:
            item.metadata = {key: "***" if key == "secret" else value for key, value in item.metadata.items()}

    loop.pm.register(Masker())
    with loop.session() as session:
        ingest(loop, session, [ItemDraft(text="slow sync", external_id="1", metadata={"a": 1})])
        ingest(loop, session, [ItemDraft(text="slow sync", external_id="1", metadata={"secret": "x",
                                                                                   "mail": "a@example.com"})])
    with loop.session() as session:
        assert session.scalars(select(FeedbackItem)).one().metadata_json == {"a": 1, "secret": "***",
                                                                              "mail": "[EMAIL]"}


RULES = """
[default]
owner = "product"

[[rule]]
name = "cards"
owner = "cards-team"
keywords_any = ["card"]
"""


def test_hook_choose_owner(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(RULES)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", load_plugins="", rules_file=rules_file)
    pm = make_plugin_manager(load_installed=False)
    card, login = a_theme(1, ("card", "declined")), a_theme(2, ("login", "crash"))

    # The built-in rules file alone.
    assert pm.hook.choose_owner(theme=card, settings=settings) == OwnerChoice("cards-team", "inbox", {}, "cards")
    assert pm.hook.choose_owner(theme=login, settings=settings) == OwnerChoice("product", "inbox", {}, "default")

    asked: list[int] = []

    class Payments:
        @hookimpl
        def choose_owner(self, theme: ThemeView) -> OwnerChoice | None:
            asked.append(theme.id)
            if "declined" in theme.keywords:
                return OwnerChoice(owner="payments", target_type="inbox", rule="payments-plugin")
            return None  # not mine: the next plugin (here the rules file) decides

    pm.register(Payments())
    # firstresult: the plugin's answer wins over the matching "cards" rule...
    assert pm.hook.choose_owner(theme=card, settings=settings) == OwnerChoice("payments", rule="payments-plugin")
    # ...and its None falls back to the rules file.
    assert pm.hook.choose_owner(theme=login, settings=settings).rule == "default"
    assert asked == [1, 2]
    # Without a rules file, nobody answers.
    no_rules = settings.model_copy(update={"rules_file": None})
    assert pm.hook.choose_owner(theme=login, settings=no_rules) is None


def test_hook_theme_created(sqlite_url: str) -> None:
    loop = make_loop(sqlite_url, min_theme_size=3)
    try:
        recorder = Recorder()
        loop.pm.register(recorder)
        build_themes(loop, CHECKOUT[:6] + LOGIN[:6])
        assert len(recorder.created) == 2
        with loop.session() as session:
            stored = {theme.id: theme.label for theme in session.scalars(select(Theme))}
        assert {view.id: view.label for view in recorder.created} == stored
        assert sorted(view.volume for view in recorder.created) == [6, 6]
        assert all(view.status == "new" for view in recorder.created)

        # Re-clustering with more of the same items keeps both themes: nothing new is announced.
        build_themes(loop, CHECKOUT[6:] + LOGIN[6:])
        assert len(recorder.created) == 2
        # A third, new group is.
        build_themes(loop, [f"refund never arrived after returning the parcel {n}" for n in ("one", "two", "six")])
        assert len(recorder.created) == 3 and recorder.created[-1].volume == 3
        assert "refund" in recorder.created[-1].quotes[0]
    finally:
        loop.close()


def test_hook_theme_status_changed(loop: FeedbackLoop) -> None:
    recorder = Recorder()
    loop.pm.register(recorder)
    with loop.session() as session:
        theme = Theme(label="card declined", status="new")
        session.add(theme)
        session.flush()
        theme_id = theme.id
    with loop.session() as session:
        update_theme(loop, session, theme_id, "pm@example.com", status="planned")
    assert [(view.id, view.status, old, new) for view, old, new in recorder.changed] == [
        (theme_id, "planned", "new", "planned")]
    with loop.session() as session:
        update_theme(loop, session, theme_id, "pm@example.com", status="planned")  # no change, no call
        update_theme(loop, session, theme_id, "pm@example.com", label="Cards declined")  # not a status change
    assert len(recorder.changed) == 1
    with loop.session() as session:
        update_theme(loop, session, theme_id, "pm@example.com", status="done", owner="cards-team")
    view, old, new = recorder.changed[-1]
    assert (old, new, view.status, view.owner, view.label) == ("planned", "done", "done", "cards-team",
                                                                 "Cards declined")


def test_hook_reply_to_thread(loop: FeedbackLoop) -> None:
    """An intake plugin's optional reply capability: the first plugin that handles the channel type answers."""
    from core.models import LoopReply
    from core.routing.replies import send_loop_replies
    from core.types import ReplyRequest

    class ChatReplies:
        def __init__(self) -> None:
            self.sent: list[ReplyRequest] = []

        @hookimpl
        def reply_to_thread(self, request: ReplyRequest) -> str | None:
            if request.channel_type != "throwaway":
                return None
            self.sent.append(request)
            return f"reply-{len(self.sent)}"

    replies = ChatReplies()
    loop.pm.register(throwaway)
    with pytest.warns(DeprecationWarning, match="deprecated"):  # kept for one release (docs/plugins.md)
        loop.pm.register(replies)
    with loop.session() as session:
        add_channel(loop, session, "chat", "throwaway")
        ingest(loop, session, [ItemDraft(text=text, channel="chat", external_id=f"m{n}", author=f"u{n % 2}",
                                         metadata={"thread_id": f"t{n % 2}"}) for n, text in enumerate(CHECKOUT)])
        embed_pending(loop, session)
        recluster(loop, session)
        theme = session.scalars(select(Theme)).one()
        update_theme(loop, session, theme.id, "pm", status="declined")
    assert send_loop_replies(loop) == 2
    assert sorted(request.thread_id for request in replies.sent) == ["t0", "t1"]
    assert all("declined" in request.text and request.channel_name == "chat" for request in replies.sent)
    assert send_loop_replies(loop) == 0
    with loop.session() as session:
        assert {reply.state for reply in session.scalars(select(LoopReply))} == {"sent"}


# --- housekeeping -----------------------------------------------------------------------------------------


def test_plugin_hooks_have_tests() -> None:
    """Every hookspec needs a ``test_hook_<name>`` here (as in datasette's test suite)."""
    names = hookspec_names()
    assert "choose_owner" in names  # the lookup itself works
    untested = [name for name in names if not callable(globals().get(f"test_hook_{name}"))]
    assert untested == [], f"hookspecs without a test_hook_<name> in {__name__}: {untested}"


def test_check_pending() -> None:
    class Misspelt:
        @hookimpl
        def enrich_itme(self, item: ItemDraft) -> None:
            item.kind = "idea"

    pm = make_plugin_manager(load_installed=False)
    pm.check_pending()  # the built-ins are all valid
    pm.register(Misspelt(), name="misspelt")
    with pytest.raises(pluggy.PluginValidationError, match="enrich_itme"):
        pm.check_pending()

