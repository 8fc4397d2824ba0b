"""A real workspace for the browser tests: a seeded SQLite file served by uvicorn in a thread, its people,
and the steps a person takes in Chromium (sign in, tab to a control, go through a preview to Apply).

The server and the test share one ``FeedbackLoop`` (so the fake embedder and the pseudonym key are the
same on both sides) and one database file: what a test reads afterwards is what the pages wrote.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from sqlalchemy import select

from api.app import create_app
from core.auth.users import add_user
from core.clock import utcnow
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import FeedbackItem, Theme, ThemeMembership
from core.routing.plan import plan_deliveries, send_deliveries
from core.themes.build import embed_pending, recluster
from core.themes.review import merge_themes, update_theme
from core.types import ItemDraft
from tests.support.loops import make_loop

if TYPE_CHECKING:
    from playwright.sync_api import Page

PASSWORD = "correct horse battery staple"
PEOPLE = {"admin": ("ada@example.test", "admin"), "pm": ("pat@example.test", "pm"),
          "viewer": ("vic@example.test", "viewer")}
UNLIMITED = {"rate_limit_per_key": "", "rate_limit_per_channel": "", "rate_limit_failed_auth_per_address": ""}
# One routing rule: checkout themes go to the payments team's inbox (the built-in target).
RULES = '[[rule]]\nname = "checkout"\nowner = "payments"\ntarget = "inbox"\nkeywords_any = ["checkout"]\n'
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "morning", "evening",
        "tonight", "today", "yesterday")
# Groups the bag-of-words HashEmbedder keeps apart: (text, channel, items, age of the newest in hours).
# Sizes differ so that sorting by volume has one right order; "refund" is two months old (window filter).
GROUPS: dict[str, tuple[str, str, int, int]] = {
    "checkout": ("checkout payment card declined again at the till", "discourse", 12, 2),
    "login": ("mobile app crashes on the login screen after update", "api", 10, 3),
    "export": ("export to excel spreadsheet fails with timeout error", "github", 8, 4),
    "darkmode": ("please add a dark mode theme for night reading", "discourse", 7, 5),
    "refund": ("refund still missing two weeks after returning the parcel", "email", 6, 24 * 60),
}


@dataclass
class Workspace:
    """The served workspace: its URL, the loop behind it, and where the seed put things."""

    url: str
    loop: FeedbackLoop
    themes: dict[str, int]  # group -> theme id
    items: dict[str, list[int]] = field(default_factory=dict)  # group -> item ids, oldest first

    def email(self, who: str) -> str:
        return PEOPLE[who][0]

    def theme(self, theme_id: int) -> Theme:
        """A detached snapshot of the theme as stored now (owner name loaded)."""
        with self.loop.session() as session:
            theme = session.get(Theme, theme_id)
            assert theme is not None, f"no theme {theme_id}"
            _ = theme.owner
            session.expunge_all()
            return theme

    def members(self, theme_id: int) -> set[int]:
        with self.loop.session() as session:
            return set(session.scalars(select(ThemeMembership.item_id).where(ThemeMembership.theme_id == theme_id)))

    def scalar(self, statement: Any) -> Any:
        with self.loop.session() as session:
            return session.scalar(statement)

    def all(self, statement: Any) -> list[Any]:
        with self.loop.session() as session:
            rows = list(session.scalars(statement))
            session.expunge_all()
            return rows


def seed(loop: FeedbackLoop, mixed: bool = False, routed: bool = False) -> tuple[dict[str, int], dict[str, list[int]]]:
    """Items of every group, embedded and clustered into one theme per group, and the people.

    ``mixed`` merges "login" into "checkout" (a theme of two kinds, for suggestions) and adds an empty
    theme "Login crashes" (``themes["target"]``) to move login items to; ``routed`` gives
    the export theme an owner and a status and sends the checkout theme's ticket to the payments inbox.
    """
    now = utcnow()
    drafts = [ItemDraft(text=f"{text} {DAYS[number]}", channel=channel, external_id=f"{group}-{number}",
                        created_at=now - timedelta(hours=newest_h + size - number))
              for group, (text, channel, size, newest_h) in GROUPS.items() for number in range(size)]
    with loop.session() as session:
        ingest(loop, session, drafts)
    with loop.session() as session:
        embed_pending(loop, session)
    with loop.session() as session:
        recluster(loop, session)
    with loop.session() as session:
        items: dict[str, list[int]] = {group: [] for group in GROUPS}
        themes: dict[str, int] = {}
        for item_id, external_id, theme_id in session.execute(
                select(FeedbackItem.id, FeedbackItem.external_id, ThemeMembership.theme_id)
                .join(ThemeMembership, ThemeMembership.item_id == FeedbackItem.id).order_by(FeedbackItem.id)):
            group = str(external_id).rsplit("-", 1)[0]
            items[group].append(item_id)
            assert themes.setdefault(group, theme_id) == theme_id, f"the {group} items fell into two themes"
        assert sorted(themes) == sorted(GROUPS) and len(set(themes.values())) == len(GROUPS), themes
        for who, (email, role) in PEOPLE.items():
            add_user(session, email, role, password=PASSWORD, name=who.title() if who != "admin" else "Ada")
        if mixed:
            merge_themes(loop, session, themes["login"], themes["checkout"], "seed")
            target = Theme(label="Login crashes", status="new", label_locked=True)
            session.add(target)
            session.flush()
            themes["target"] = target.id
        if routed:
            update_theme(loop, session, themes["export"], "seed", owner="data-team", status="planned")
            plan_deliveries(loop, session, theme_ids=[themes["checkout"]])
    if routed:
        send_deliveries(loop)
    return themes, items


@contextmanager
def served_workspace(folder: Path, mixed: bool = False, routed: bool = False) -> Iterator[Workspace]:
    """A seeded workspace on ``folder``/workspace.db, served by uvicorn on a free loopback port."""
    folder.mkdir(parents=True, exist_ok=True)
    rules = folder / "rules.toml"
    rules.write_text(RULES)
    loop = make_loop(f"sqlite:///{folder / 'workspace.db'}", rules_file=rules, secrets_dir=folder / ".secrets",
                     **UNLIMITED)
    themes, items = seed(loop, mixed=mixed, routed=routed)
    server = uvicorn.Server(uvicorn.Config(create_app(loop.settings, loop=loop), log_level="warning",
                                           lifespan="off"))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.02)
    assert server.started, "the workspace server did not start"
    try:
        yield Workspace(f"http://127.0.0.1:{listener.getsockname()[1]}", loop, themes, items)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
        loop.close()


def sign_in(page: Page, workspace: Workspace, who: str = "pm", next_path: str = "/") -> None:
    """The password form, as a person fills it; ends on ``next_path``."""
    page.goto(f"/signin?next={next_path}")
    page.get_by_label("E-mail address").fill(workspace.email(who))
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{workspace.url}{next_path}")


def tab_to(page: Page, selector: str, limit: int = 120) -> None:
    """Press Tab until the focused element matches ``selector`` (the way a keyboard user gets there)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement !== null && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} was not reached with {limit} presses of Tab")


def apply_preview(page: Page, expect_line: str) -> None:
    """On a preview page: check what it says will change, then press Apply."""
    change = page.get_by_role("region", name="What will change")
    assert expect_line in change.inner_text(), change.inner_text()
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state()


def flash(page: Page) -> str:
    return page.get_by_role("status").first.inner_text()
