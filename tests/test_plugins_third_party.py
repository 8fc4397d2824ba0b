"""Third-party plugins: one end to end (a channel and a target from outside the tree), and plugins installed
as packages, found through their ``feedbackloop`` entry point, allow-listed and listed."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from api.app import create_app
from core import hookimpl
from core.cli.app import app as cli_app
from core.intake.channels import add_channel, receive_webhook
from core.loop import FeedbackLoop
from core.models import Delivery, FeedbackItem, Theme
from core.plugin_manager import LOAD_PLUGINS_ENV, list_plugins, make_plugin_manager
from core.routing.plan import route
from core.settings import get_settings
from core.types import ItemDraft, OwnerChoice, ThemeView
from tests.plugins import throwaway
from tests.support.themes import CHECKOUT, LOGIN, build_themes

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


@pytest.fixture(autouse=True)
def clear_sent() -> Iterator[None]:
    throwaway.SENT.clear()
    yield
    throwaway.SENT.clear()


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
