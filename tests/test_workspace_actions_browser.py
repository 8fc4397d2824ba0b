"""Every theme action through the workspace in Chromium, checked in the database afterwards.

Each action goes through its preview ("What will change") and then Apply; undo works from the flash
message and from the history table; suggestions after a move are accepted or rejected; the triage queue
accepts, assigns and ignores; forms without the CSRF token or from another origin are refused; an action
can be done with the keyboard alone. Each test gets a freshly seeded workspace (they change it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from core.models import AuditEntry, Delivery, FeedbackItem, Owner, SuggestionDecision, Theme, ThemeMembership, User
from core.themes.triage import nav_counts
from tests.support.browser import PageFactory, assert_accessible, screenshot
from tests.support.workspace_browser import Workspace, apply_preview, flash, served_workspace, sign_in, tab_to

PM_ACTOR = "user:pat@example.test"


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    with served_workspace(tmp_path / "workspace") as served:
        yield served


@pytest.fixture
def mixed_workspace(tmp_path: Path) -> Iterator[Workspace]:
    """The login theme merged into the checkout theme: one theme about two things."""
    with served_workspace(tmp_path / "workspace", mixed=True) as served:
        yield served


def open_theme(page: Page, workspace: Workspace, group: str) -> int:
    theme_id = workspace.themes[group]
    page.goto(f"/themes/{theme_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text(workspace.theme(theme_id).label)
    return theme_id


def last_entry(workspace: Workspace, action: str) -> AuditEntry:
    entry = workspace.scalar(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id.desc()))
    assert isinstance(entry, AuditEntry), f"no {action} in the audit log"
    return entry


def apply_undo(page: Page) -> None:
    expect(page.get_by_role("heading", level=1)).to_contain_text("Undo")
    screenshot(page, "workspace-preview-undo")
    assert_accessible(page)
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"done=Undone"))
    expect(page.get_by_role("status")).to_contain_text("Undone.")


def test_rename_then_undo_from_the_flash_message(workspace: Workspace, page_for: PageFactory) -> None:
    with page_for(workspace.url) as page:
        sign_in(page, workspace)
        theme_id = open_theme(page, workspace, "login")
        old_label = workspace.theme(theme_id).label
        page.get_by_label("New name").fill("Login crashes on mobile")
        page.get_by_role("button", name="Rename…").click()
        page.wait_for_url(re.compile(rf"/themes/{theme_id}/preview\?action=rename"))
        apply_preview(page, f"“{old_label}” will be renamed “Login crashes on mobile”")
        page.wait_for_url(re.compile(rf"/themes/{theme_id}\?done=Renamed"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Login crashes on mobile")
        renamed = workspace.theme(theme_id)
        assert (renamed.label, renamed.label_locked) == ("Login crashes on mobile", True)
        entry = last_entry(workspace, "rename")
        assert entry.actor == PM_ACTOR and entry.entity_id == str(theme_id)
        screenshot(page, "workspace-theme-flash")
        assert_accessible(page)

        page.get_by_role("status").get_by_role("link", name="Undo").click()
        page.wait_for_url(re.compile(rf"/history/{entry.id}/undo"))
        apply_undo(page)
        restored = workspace.theme(theme_id)
        assert (restored.label, restored.label_locked) == (old_label, False)
        assert workspace.scalar(select(AuditEntry.undone_by_id).where(AuditEntry.id == entry.id)) is not None


def test_set_status_then_undo_from_the_history_table(workspace: Workspace, page_for: PageFactory) -> None:
    with page_for(workspace.url) as page:
        sign_in(page, workspace)
        theme_id = open_theme(page, workspace, "export")
        actions = page.get_by_role("region", name="Actions")
        actions.get_by_label("Status").select_option("planned")
        actions.get_by_role("button", name="Set status…").click()
        apply_preview(page, "changes from “new” to “planned”")
        expect(page.get_by_role("status")).to_contain_text("Status set to planned.")
        assert workspace.theme(theme_id).status == "planned"

        history = page.get_by_role("region", name="History")
        what = page.locator("td:nth-child(3)", has_text=re.compile(r"^set_status$"))
        row = history.get_by_role("row").filter(has=what)
        expect(row).to_have_count(1)
        row.get_by_role("link", name="Undo").click()
        apply_undo(page)
        assert workspace.theme(theme_id).status == "new"
        expect(page.get_by_role("region", name="History").get_by_role("row").filter(has=what)).to_contain_text(
            "undone")
        expect(page.get_by_role("region", name="History").get_by_role("row").filter(
            has=page.locator("td:nth-child(3)", has_text=re.compile(r"^undo$")))).to_have_count(1)


def test_assign_an_owner_and_ignore_a_theme(workspace: Workspace, page_for: PageFactory) -> None:
    with page_for(workspace.url) as page:
        sign_in(page, workspace)
        theme_id = open_theme(page, workspace, "refund")
        page.get_by_role("region", name="Actions").get_by_label("Owner").fill("returns-team")
        page.get_by_role("button", name="Assign…").click()
        apply_preview(page, "A new owner “returns-team” will be created")
        expect(page.get_by_role("status")).to_contain_text("Owner set to returns-team.")
        theme = workspace.theme(theme_id)
        assert theme.owner is not None and theme.owner.name == "returns-team"
        assert last_entry(workspace, "set_owner").actor == PM_ACTOR

        noise = open_theme(page, workspace, "darkmode")
        page.get_by_role("button", name="Ignore…").click()
        apply_preview(page, "changes from “new” to “ignored”")
        assert workspace.theme(noise).status == "ignored"
        expect(page.locator("main p .status").first).to_have_text("ignored")


def test_merge_into_another_theme_found_with_the_picker(workspace: Workspace, page_for: PageFactory) -> None:
    with page_for(workspace.url) as page:
        sign_in(page, workspace)
        source = open_theme(page, workspace, "darkmode")
        target = workspace.themes["export"]
        target_label = workspace.theme(target).label
        page.get_by_label("Find a theme (to merge into, or move items to)").fill("excel")
        page.get_by_role("button", name="Find", exact=True).click()
        page.wait_for_url(re.compile(r"pick=excel"))
        merge = page.get_by_role("group", name="Merge into")
        expect(merge.get_by_role("radio")).to_have_count(1)  # only the theme whose name matches
        assert_accessible(page)
        merge.get_by_label(target_label).check()
        page.get_by_role("button", name="Merge…").click()
        apply_preview(page, f"7 items move from “{workspace.theme(source).label}” to “{target_label}”")
        page.wait_for_url(re.compile(rf"/themes/{target}\?done=Merged"))
        merged = workspace.theme(source)
        assert (merged.status, merged.merged_into_id) == ("merged", target)
        assert set(workspace.items["darkmode"]) <= workspace.members(target)
        assert len(workspace.members(target)) == 15 and workspace.members(source) == set()


def test_split_selected_items_into_a_new_theme(workspace: Workspace, page_for: PageFactory) -> None:
    with page_for(workspace.url) as page:
        sign_in(page, workspace)
        source = open_theme(page, workspace, "checkout")
        chosen = workspace.items["checkout"][:2]
        for item_id in chosen:
            page.get_by_label(f"Select item {item_id}", exact=True).check()
        page.get_by_label("Name of the new theme").fill("Card declined early in the week")
        page.get_by_role("button", name="Split selected into a new theme…").click()
        apply_preview(page, "2 items move from")
        page.wait_for_url(re.compile(r"done=Split"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Card declined early in the week")
        new_theme = workspace.scalar(select(Theme).where(Theme.label == "Card declined early in the week"))
        assert new_theme is not None and new_theme.label_locked
        assert workspace.members(new_theme.id) == set(chosen)
        assert workspace.members(source) == set(workspace.items["checkout"][2:])
        sources = workspace.all(select(ThemeMembership.source).where(ThemeMembership.item_id.in_(chosen)))
        assert sources == ["human", "human"]


def move_two_login_items(page: Page, workspace: Workspace) -> tuple[int, int, list[int]]:
    """On the mixed theme, find the target with the picker and move two login items there."""
    source = open_theme(page, workspace, "checkout")
    target = workspace.themes["target"]
    moved = workspace.items["login"][:2]
    page.get_by_label("Find a theme (to merge into, or move items to)").fill("login")
    page.get_by_role("button", name="Find", exact=True).click()
    page.wait_for_url(re.compile(r"pick=login"))
    for item_id in moved:
        page.get_by_label(f"Select item {item_id}", exact=True).check()
    page.get_by_label("Move selected to").select_option(label="Login crashes")
    page.get_by_role("button", name="Move selected…").click()
    apply_preview(page, f"2 items move from “{workspace.theme(source).label}” to “Login crashes”")
    page.wait_for_url(re.compile(rf"/themes/{target}\?done=Moved"))
    assert workspace.members(target) == set(moved)
    return source, target, moved


def suggested_items(page: Page) -> tuple[int, list[int], list[int]]:
    """The suggestions block: the count its heading says, the item ids it lists and those checked."""
    heading = page.get_by_role("heading", name=re.compile(r"more look like these"))
    expect(heading).to_be_visible()
    count = int(re.match(r"(\d+) more", heading.inner_text()).group(1))  # type: ignore[union-attr]
    boxes = page.locator('input[type=checkbox][id^="sug-"]')
    shown = [int(value) for value in boxes.evaluate_all("nodes => nodes.map(n => n.value)")]
    checked = [int(value) for value in boxes.evaluate_all("nodes => nodes.filter(n => n.checked).map(n => n.value)")]
    return count, shown, checked


def test_suggestions_after_a_move_are_accepted(mixed_workspace: Workspace, page_for: PageFactory) -> None:
    workspace = mixed_workspace
    with page_for(workspace.url) as page:
        sign_in(page, workspace)
        source, target, moved = move_two_login_items(page, workspace)
        count, shown, suggested = suggested_items(page)
        login_left = set(workspace.items["login"]) - set(moved)
        # The eight login items left behind are the ones that look alike (checked); more are offered unchecked.
        assert count == len(suggested) and set(suggested) == login_left, (suggested, login_left)
        assert len(shown) >= count and set(shown[:count]) == login_left
        screenshot(page, "workspace-theme-suggestions")
        assert_accessible(page)

        page.get_by_role("button", name="Move the checked ones here").click()
        page.wait_for_url(re.compile(r"done=Moved"))
        expect(page.get_by_role("status")).to_contain_text(f"Moved {count} more item{'' if count == 1 else 's'}.")
        assert workspace.members(target) == set(moved) | set(suggested)
        assert not set(suggested) & workspace.members(source)
        decisions = workspace.all(select(SuggestionDecision).where(SuggestionDecision.theme_id == target))
        assert sorted((d.item_id, d.accepted, d.actor) for d in decisions) == [
            (item_id, True, PM_ACTOR) for item_id in sorted(suggested)]


def test_rejected_suggestions_are_remembered(mixed_workspace: Workspace, page_for: PageFactory) -> None:
    workspace = mixed_workspace
    with page_for(workspace.url) as page:
        sign_in(page, workspace)
        source, target, moved = move_two_login_items(page, workspace)
        count, _, suggested = suggested_items(page)
        assert count >= 1 and set(suggested) <= set(workspace.items["login"])
        # Keep only the first suggestion checked: rejecting applies to the checked ones.
        for item_id in suggested[1:]:
            page.locator(f"#sug-{item_id}").uncheck()
        page.get_by_role("button", name="The checked ones do not belong here").click()
        page.wait_for_url(re.compile(r"done="))
        expect(page.get_by_role("status")).to_contain_text("1 suggestion rejected")
        decisions = workspace.all(select(SuggestionDecision).where(SuggestionDecision.theme_id == target))
        assert [(d.item_id, d.accepted, d.actor) for d in decisions] == [(suggested[0], False, PM_ACTOR)]
        assert workspace.members(target) == set(moved)  # nothing more moved
        assert suggested[0] in workspace.members(source)


def test_route_now_sends_the_ticket_to_the_inbox(workspace: Workspace, page_for: PageFactory) -> None:
    with page_for(workspace.url) as page:
        sign_in(page, workspace)
        theme_id = open_theme(page, workspace, "checkout")
        assert workspace.scalar(select(Delivery).where(Delivery.theme_id == theme_id)) is None
        page.get_by_role("button", name="Route now…").click()
        apply_preview(page, "A ticket goes to payments through inbox.")
        expect(page.get_by_role("status")).to_contain_text("Routed")
        deadline = time.monotonic() + 10
        while True:  # the ticket is sent after the answer (a background task)
            delivery = workspace.scalar(select(Delivery).where(Delivery.theme_id == theme_id))
            if delivery is not None and delivery.state == "sent" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert delivery is not None and delivery.target_type == "inbox" and delivery.state == "sent", delivery
        assert workspace.scalar(select(Owner.name).where(Owner.id == delivery.owner_id)) == "payments"
        page.get_by_role("link", name=re.compile("^Inbox")).click()
        page.wait_for_url(re.compile("/inbox$"))
        expect(page.get_by_role("link", name=workspace.theme(theme_id).label)).to_be_visible()
        expect(page.locator('[data-live="inbox"]')).to_have_text("1")


def triage_count(page: Page) -> int:
    return int(page.locator('[data-live="triage"]').inner_text())


def stored_triage_count(workspace: Workspace) -> int:
    with workspace.loop.session() as session:
        pm = session.scalar(select(User).where(User.email == workspace.email("pm")))
        assert pm is not None
        return nav_counts(session, pm)["triage"]


def test_triage_accepts_assigns_and_ignores_from_the_queue(workspace: Workspace, page_for: PageFactory) -> None:
    with page_for(workspace.url) as page:
        sign_in(page, workspace, next_path="/triage")
        assert triage_count(page) == stored_triage_count(workspace) == 5  # five new themes
        screenshot(page, "workspace-triage-queue")
        login = workspace.theme(workspace.themes["login"]).label

        def row(label: str) -> Locator:
            return page.get_by_role("row").filter(has=page.get_by_role("link", name=label, exact=True))

        row(login).get_by_role("button", name="Accept").click()
        page.wait_for_url(re.compile(r"/triage\?done="))
        expect(page.get_by_role("status")).to_contain_text("Status set to triaged.")
        assert workspace.theme(workspace.themes["login"]).status == "triaged"
        # Accepted but nobody owns it: it stays in the queue as "unassigned".
        expect(row(login)).to_contain_text("unassigned")
        assert triage_count(page) == stored_triage_count(workspace) == 5

        row(login).get_by_label(f"Owner for {login}").fill("mobile-team")
        row(login).get_by_role("button", name="Assign").click()
        page.wait_for_url(re.compile(r"/triage\?done=Owner"))
        theme = workspace.theme(workspace.themes["login"])
        assert theme.owner is not None and theme.owner.name == "mobile-team"
        expect(row(login)).to_have_count(0)
        assert triage_count(page) == stored_triage_count(workspace) == 4

        refund = workspace.theme(workspace.themes["refund"]).label
        row(refund).get_by_role("button", name="Ignore").click()
        page.wait_for_url(re.compile(r"/triage\?done=Status"))
        assert workspace.theme(workspace.themes["refund"]).status == "ignored"
        expect(row(refund)).to_have_count(0)
        assert triage_count(page) == stored_triage_count(workspace) == 3
        screenshot(page, "workspace-triage-done")
        assert_accessible(page)


def test_forms_without_the_token_or_from_another_origin_are_refused(workspace: Workspace,
                                                                   page_for: PageFactory) -> None:
    with page_for(workspace.url) as page:
        sign_in(page, workspace)
        theme_id = open_theme(page, workspace, "export")
        label = workspace.theme(theme_id).label
        csrf = page.locator('input[name="csrf_token"]').first.input_value()
        apply_path = f"/themes/{theme_id}/apply"
        rename: dict[str, str | float | bool] = {"action": "rename", "label": "Renamed by a forged form"}

        refusals = [page.request.post(apply_path, form=rename, max_redirects=0),
                    page.request.post(apply_path, form={**rename, "csrf_token": "not-the-token"}, max_redirects=0),
                    page.request.post(apply_path, form={**rename, "csrf_token": csrf}, max_redirects=0,
                                      headers={"Origin": "https://evil.example"}),
                    page.request.post(f"/triage/{theme_id}", form={"verdict": "ignore"}, max_redirects=0),
                    page.request.post("/signout", form={}, max_redirects=0)]
        assert [answer.status for answer in refusals] == [403] * len(refusals)
        # From the page's own script too: a same-origin fetch without the token.
        status = page.evaluate("""(path) => fetch(path, {method: "POST", redirect: "manual",
            body: new URLSearchParams({action: "rename", label: "Renamed by a script"})}).then(r => r.status)""",
                               apply_path)
        assert status == 403
        theme = workspace.theme(theme_id)
        assert (theme.label, theme.status) == (label, "new")
        assert workspace.scalar(select(AuditEntry).where(AuditEntry.entity_id == str(theme_id))) is None
        page.reload()
        expect(page.get_by_role("heading", level=1)).to_have_text(label)  # still signed in, nothing changed

        # The same request with the token from this origin is accepted: the refusals were the token and origin.
        accepted = page.request.post(apply_path, form={**rename, "csrf_token": csrf}, max_redirects=0,
                                     headers={"Origin": workspace.url})
        assert accepted.status == 303
        assert workspace.theme(theme_id).label == "Renamed by a forged form"


def test_an_action_done_with_the_keyboard_alone(workspace: Workspace, page_for: PageFactory) -> None:
    with page_for(workspace.url) as page:
        page.goto("/signin")
        tab_to(page, "#email")
        page.keyboard.type(workspace.email("pm"))
        page.keyboard.press("Tab")
        page.keyboard.type("correct horse battery staple")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{workspace.url}/")

        refund_id = workspace.themes["refund"]
        tab_to(page, f'a[href="/themes/{refund_id}"]')
        page.keyboard.press("Enter")
        page.wait_for_url(f"{workspace.url}/themes/{refund_id}")
        tab_to(page, "#owner")
        page.keyboard.press("Control+A")
        page.keyboard.type("returns-team")
        page.keyboard.press("Enter")  # submits the owner form: to its preview
        page.wait_for_url(re.compile(r"/preview\?action=set_owner"))
        tab_to(page, "button[data-confirm]")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(rf"/themes/{refund_id}\?done=Owner"))
        assert "Owner set to returns-team." in flash(page)
        theme = workspace.theme(refund_id)
        assert theme.owner is not None and theme.owner.name == "returns-team"

        # Undo from the flash message, with the keyboard too.
        tab_to(page, '[role="status"] a')
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/history/\d+/undo"))
        tab_to(page, "button[data-confirm]")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"done=Undone"))
        assert workspace.theme(refund_id).owner_id is None
        assert workspace.scalar(select(FeedbackItem.id).limit(1)) is not None
