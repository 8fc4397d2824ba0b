"""The plugin system: a third-party plugin end to end, entry-point discovery, and one test per hook."""

from __future__ import annotations

import inspect
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from api.app import create_app
from core import hookimpl, hookspecs
from core.cli.app import app as cli_app
from core.intake.channels import add_channel, receive_webhook
from core.intake.ingest import ingest
from core.loop import ConfigurationError, FeedbackLoop
from core.models import Delivery, FeedbackItem, Theme
from core.plugin_manager import (
    LOAD_PLUGINS_ENV,
    channel_types,
    embedders,
    list_plugins,
    make_plugin_manager,
    target_types,
)
from core.routing.plan import route
from core.settings import Settings, get_settings
from core.themes.build import embed_pending, recluster
from core.themes.review import update_theme
from core.types import (
    DeliveryRequest,
    ItemDraft,
    OwnerChoice,
    ThemeView,
    WebhookRequest,
)
from tests.conftest import ADMIN_KEY, HashEmbedder, make_loop
from tests.plugins import throwaway

# Two obvious groups for the bag-of-words HashEmbedder: each text shares all but one word with its group.
CHECKOUT = [f"checkout payment card declined again at the till {word}"
            for word in ("monday", "tuesday", "wednesday", "thursday", "friday",
                         "saturday", "sunday", "morning", "evening", "tonight")]
LOGIN = [f"mobile app crashes on the login screen after update {word}"
         for word in ("iphone", "android", "tablet", "pixel", "galaxy",
                      "ipad", "oneplus", "xiaomi", "motorola", "nokia")]


def hookspec_names() -> list[str]:
    return sorted(name for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
                  if getattr(function, f"{hookspecs.PROJECT_NAME}_spec", None) is not None)


def build_themes(loop: FeedbackLoop, texts: list[str] | None = None) -> None:
    """Ingest (when ``texts`` is given), embed and cluster, each step committed."""
    if texts:
        with loop.session() as session:
            ingest(loop, session, [ItemDraft(text=text) for text in texts])
    with loop.session() as session:
        embed_pending(loop, session)
    with loop.session() as session:
        recluster(loop, session)


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


# --- a third-party plugin, end to end ---------------------------------------------------------------------


class OpsOwner:
    @hookimpl
    def choose_owner(self, theme: ThemeView) -> OwnerChoice:
        return OwnerChoice(owner="ops", target_type="memo", rule="throwaway")


def test_throwaway_plugin_adds_channel_and_target(loop: FeedbackLoop) -> None:
    # Registered before loop.channel_types / loop.target_types are first read (they are cached).
    loop.pm.register(throwaway)
    loop.pm.check_pending()
    assert "throwaway" in loop.channel_types and "memo" in loop.target_types
    with loop.session() as session:
        add_channel(loop, session, "chat", "throwaway")

    def body(texts: list[str], first_id: int) -> bytes:
        return json.dumps({"messages": [{"id": first_id + n, "body": text}
                                        for n, text in enumerate(texts)]}).encode()

    # Half of each group through the core function, the other half through the HTTP API.
    outcome = receive_webhook(loop, "chat", {"Content-Type": "application/json"}, body(CHECKOUT[:5] + LOGIN[:5], 1))
    assert outcome.ignored is None and outcome.report is not None and outcome.report.created == 10
    noise = receive_webhook(loop, "chat", {}, json.dumps({"event": "noise"}).encode())
    assert noise.ignored == "noise event" and noise.report is None
    with TestClient(create_app(loop.settings, loop=loop)) as client:
        response = client.post("/webhooks/chat", content=body(CHECKOUT[5:] + LOGIN[5:], 11))
        assert response.status_code == 202, response.text
        assert response.json() | {"status": "accepted", "created": 10, "updated": 0, "duplicates": 0} == response.json()
        response = client.post("/webhooks/chat", content=json.dumps({"event": "noise"}))
        assert response.status_code == 202 and response.json()["status"] == "ignored"
        again = client.post("/webhooks/chat", content=body(CHECKOUT[5:] + LOGIN[5:], 11))
        assert again.json()["duplicates"] == 10
    with loop.session() as session:
        stored = session.scalars(select(FeedbackItem).order_by(FeedbackItem.id)).all()
        assert len(stored) == 20
        assert {item.channel for item in stored} == {"chat"}
        assert sorted(item.external_id for item in stored) == sorted(str(n) for n in range(1, 21))

    build_themes(loop)
    with loop.session() as session:
        theme_ids = set(session.scalars(select(Theme.id).where(Theme.status != "archived")))
    assert len(theme_ids) == 2

    loop.pm.register(OpsOwner())
    report = route(loop)
    assert (report.decided, report.sent, report.failed, report.unrouted) == (2, 2, 0, 0)
    assert len(throwaway.SENT) == 2
    assert {request.theme.id for request in throwaway.SENT} == theme_ids
    assert {request.owner for request in throwaway.SENT} == {"ops"}
    assert all(request.theme.channels == {"chat": 10} for request in throwaway.SENT)
    with loop.session() as session:
        deliveries = session.scalars(select(Delivery).order_by(Delivery.id)).all()
        assert [d.target_type for d in deliveries] == ["memo", "memo"]
        assert sorted(d.external_ref or "" for d in deliveries) == ["memo-1", "memo-2"]

    second = route(loop)
    assert (second.sent, second.updated, second.failed) == (0, 0, 0)
    assert len(throwaway.SENT) == 2
    with loop.session() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 2


# --- an installed package, found through its entry point --------------------------------------------------

INSTALLED_PLUGIN = '''
from core import hookimpl


@hookimpl
def enrich_item(item):
    item.metadata["throwaway_pkg"] = True


@hookimpl
def theme_created(theme):
    pass
'''


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``throwaway_pkg`` 1.2.3 "installed" in tmp_path, with a ``feedbackloop`` entry point named throwaway."""
    site = tmp_path / "site"
    (site / "throwaway_pkg").mkdir(parents=True)
    (site / "throwaway_pkg" / "__init__.py").write_text(textwrap.dedent(INSTALLED_PLUGIN).lstrip())
    dist_info = site / "throwaway_pkg-1.2.3.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: throwaway_pkg\nVersion: 1.2.3\n")
    (dist_info / "entry_points.txt").write_text("[feedbackloop]\nthrowaway = throwaway_pkg\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv(LOAD_PLUGINS_ENV, raising=False)
    try:
        yield site
    finally:
        sys.modules.pop("throwaway_pkg", None)


def test_installed_plugin_is_discovered(installed_plugin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pm = make_plugin_manager()
    plugin = pm.get_plugin("throwaway")
    assert plugin is not None and plugin.__name__ == "throwaway_pkg"
    infos = {info.name: info for info in list_plugins(pm)}
    info = infos["throwaway"]
    assert (info.version, info.builtin, info.hooks) == ("1.2.3", False, ["enrich_item", "theme_created"])
    assert infos["plugins.generic_webhook"].builtin and infos["plugins.generic_webhook"].version is None
    assert list(infos)[-1] == "throwaway"  # built-ins are listed first

    draft = ItemDraft(text="hello")
    pm.hook.enrich_item(item=draft, settings=None)
    assert draft.metadata == {"throwaway_pkg": True}

    assert make_plugin_manager(load_installed=False).get_plugin("throwaway") is None
    for allow, loaded in (("", False), ("throwaway", True), ("other", False), (" other , throwaway ", True)):
        monkeypatch.setenv(LOAD_PLUGINS_ENV, allow)
        assert (make_plugin_manager().get_plugin("throwaway") is not None) is loaded, allow
    # An explicit allow-list (Settings.load_plugins) beats the environment.
    monkeypatch.setenv(LOAD_PLUGINS_ENV, "")
    assert make_plugin_manager(load_plugins="throwaway").get_plugin("throwaway") is not None


def test_cli_lists_installed_plugin(installed_plugin: Path, tmp_path: Path) -> None:
    env = {"FEEDBACKLOOP_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", LOAD_PLUGINS_ENV: None,
           "COLUMNS": "200"}
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["plugins"], env=env)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if " throwaway " in line)
    assert "1.2.3" in line
    assert "enrich_item" in result.output and "theme_created" in result.output
    assert "plugins.generic_webhook" in result.output


# --- one test per hook ------------------------------------------------------------------------------------


def test_hook_register_channel_types() -> None:
    pm = make_plugin_manager(load_installed=False)
    built_in = {"webhook", "discourse", "github"}
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

