"""The workspace in a real Chromium over a real server (uvicorn, SQLite file): signing in, the overview's
filters, search, sort and paging, the keyboard, live counts, and every page's screenshot and axe check.

These tests only read (the live test, last, adds a theme), so they share one seeded workspace; the
actions, which change it, are in tests/test_workspace_actions_browser.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from core.models import Theme, User
from core.themes.triage import nav_counts
from tests.support.browser import PageFactory, assert_accessible, screenshot
from tests.support.env import ADMIN_KEY
from tests.support.workspace_browser import (
    GROUPS,
    PASSWORD,
    Workspace,
    served_workspace,
    sign_in,
    tab_to,
)

# The admin pages (api/pages/admin*.py): each must render for an admin, pass axe and be screenshotted.
ADMIN_PAGES = ("/admin", "/admin/channels", "/admin/rules", "/admin/users", "/admin/keys",
               "/admin/reply-template", "/admin/audit")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    with served_workspace(tmp_path_factory.mktemp("workspace"), routed=True) as served:
        yield served


def theme_labels(page: Page) -> list[str]:
    """The overview's theme names, in the order shown."""
    links = page.locator("table[data-theme-table] tbody tr td:first-child a")
    return [text.strip() for text in links.all_inner_texts()]


def volumes(page: Page) -> dict[str, int]:
    """Each shown theme's "Items" column: its items in the window."""
    rows = page.locator("table[data-theme-table] tbody tr")
    return {rows.nth(index).locator("td").nth(0).locator("a").inner_text().strip():
            int(rows.nth(index).locator("td").nth(5).inner_text()) for index in range(rows.count())}


def label_of(workspace: Workspace, group: str) -> str:
    return workspace.theme(workspace.themes[group]).label


def query_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def test_sign_in_refuses_a_wrong_password_and_brings_the_person_back(workspace: Workspace,
                                                                     page_for: PageFactory) -> None:
    with page_for(workspace.url) as page:
        page.goto("/triage")
        page.wait_for_url(re.compile(r"/signin\?next="))
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        screenshot(page, "workspace-signin")
        assert_accessible(page)

        page.get_by_label("E-mail address").fill(workspace.email("pm"))
        page.get_by_label("Password").fill("not the password at all")
        with page.expect_response(lambda answer: urlsplit(answer.url).path == "/signin"
                                  and answer.request.method == "POST") as refused:
            page.get_by_role("button", name="Sign in").click()
        assert refused.value.status == 401
        expect(page.get_by_role("alert")).to_contain_text("do not match an account")
        assert all(cookie["name"] != "feedbackloop_session" for cookie in page.context.cookies())
        screenshot(page, "workspace-signin-refused")
        assert_accessible(page)

        # The form keeps the e-mail address; the right password lands on the page asked for first.
        expect(page.get_by_label("E-mail address")).to_have_value(workspace.email("pm"))
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{workspace.url}/triage")
        expect(page.get_by_role("heading", name=re.compile("^Triage"))).to_be_visible()
        expect(page.locator("header .who")).to_contain_text("(pm)")
        session_cookie = [c for c in page.context.cookies() if c["name"] == "feedbackloop_session"]
        assert session_cookie and session_cookie[0]["httpOnly"] and session_cookie[0]["sameSite"] == "Lax"

        # Signing out ends the session: the pages send the person back to the sign-in form.
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(r"/signin$"))
        page.goto("/")
        page.wait_for_url(re.compile(r"/signin\?next="))


def test_overview_filters_by_status_owner_channel_and_window(workspace: Workspace, page_for: PageFactory) -> None:
    with page_for(workspace.url) as page:
        sign_in(page, workspace)
        every = {label_of(workspace, group) for group in GROUPS}
        sizes = {label_of(workspace, group): GROUPS[group][2] for group in GROUPS}
        # The default window is 30 days: the refund items are two months old.
        assert volumes(page) == {**sizes, label_of(workspace, "refund"): 0}

        page.get_by_label("Window").select_option("90d")
        page.get_by_role("button", name="Apply").click()
        page.wait_for_url(re.compile(r"window=90d"))
        assert volumes(page) == sizes
        page.get_by_label("Window").select_option("7d")
        page.get_by_role("button", name="Apply").click()
        page.wait_for_url(re.compile(r"window=7d"))
        assert volumes(page) == {**sizes, label_of(workspace, "refund"): 0}

        page.get_by_label("Status").select_option("planned")
        page.get_by_role("button", name="Apply").click()
        page.wait_for_url(re.compile(r"status=planned"))
        assert theme_labels(page) == [label_of(workspace, "export")]
        assert query_of(page)["window"] == ["7d"]  # the other filters stay

        page.goto("/")
        page.get_by_label("Owner").select_option(label="data-team")
        page.get_by_role("button", name="Apply").click()
        page.wait_for_url(re.compile(r"owner="))
        assert theme_labels(page) == [label_of(workspace, "export")]
        page.get_by_label("Owner").select_option(label="nobody")
        page.get_by_role("button", name="Apply").click()
        page.wait_for_url(re.compile(r"owner=none"))
        # The checkout theme got the payments owner when its ticket was routed.
        assert set(theme_labels(page)) == every - {label_of(workspace, "export"), label_of(workspace, "checkout")}

        page.goto("/")
        page.get_by_label("Channel").select_option("discourse")
        page.get_by_role("button", name="Apply").click()
        page.wait_for_url(re.compile(r"channel=discourse"))
        assert set(theme_labels(page)) == {label_of(workspace, "checkout"), label_of(workspace, "darkmode")}
        screenshot(page, "workspace-overview-filtered")

        page.get_by_role("link", name="Clear").click()
        page.wait_for_url(f"{workspace.url}/")
        assert set(theme_labels(page)) == every


def test_overview_search_sort_and_paging_keep_the_filters(workspace: Workspace, page_for: PageFactory) -> None:
    with page_for(workspace.url) as page:
        sign_in(page, workspace)
        page.get_by_label("Search labels and items").fill("excel")
        page.get_by_role("button", name="Apply").click()
        page.wait_for_url(re.compile(r"q=excel"))
        assert theme_labels(page) == [label_of(workspace, "export")]
        page.get_by_label("Search labels and items").fill("tonight")  # a word of the items, not of a label
        page.get_by_role("button", name="Apply").click()
        page.wait_for_url(re.compile(r"q=tonight"))
        assert set(theme_labels(page)) == {label_of(workspace, g) for g in ("checkout", "login")}

        # Sorting by a column header: the sizes of the groups are all different.
        page.goto("/?window=90d")
        page.locator("thead").get_by_role("link", name="Items").click()
        page.wait_for_url(re.compile(r"sort=volume"))
        by_size = sorted(GROUPS, key=lambda group: -GROUPS[group][2])
        assert theme_labels(page) == [label_of(workspace, group) for group in by_size]
        assert query_of(page)["window"] == ["90d"]
        sorted_by = page.locator("thead th[aria-sort]")  # the sorted column says so to assistive technology
        expect(sorted_by).to_have_count(1)
        expect(sorted_by).to_have_attribute("aria-sort", "descending")
        expect(sorted_by).to_contain_text("Items")
        assert_accessible(page)
        page.locator("thead").get_by_role("link", name="Theme").click()
        page.wait_for_url(re.compile(r"sort=label"))
        assert theme_labels(page) == sorted(theme_labels(page)) and len(theme_labels(page)) == len(GROUPS)
        expect(sorted_by).to_have_attribute("aria-sort", "ascending")
        expect(sorted_by).to_contain_text("Theme")

        # Paging: one theme a page; "Next" keeps the channel filter, the sort and the page size.
        page.goto("/?channel=discourse&sort=label&per_page=1")
        first = theme_labels(page)
        expect(page.get_by_text("Page 1 of 2")).to_be_visible()
        page.get_by_role("navigation", name="Pages").get_by_role("link", name="Next").click()
        page.wait_for_url(re.compile(r"page=2"))
        query = query_of(page)
        assert query["channel"] == ["discourse"] and query["sort"] == ["label"] and query["per_page"] == ["1"]
        second = theme_labels(page)
        assert len(first) == len(second) == 1 and set(first + second) == {
            label_of(workspace, "checkout"), label_of(workspace, "darkmode")}
        assert first + second == sorted(first + second)
        page.get_by_role("link", name="Previous").click()
        page.wait_for_url(re.compile(r"channel=discourse"))
        assert theme_labels(page) == first

        # Within a theme: the search box finds its items by their words.
        page.goto(f"/themes/{workspace.themes['checkout']}")
        items = page.get_by_role("region", name=re.compile(r"^Items"))
        page.get_by_label("Search items").fill("monday")
        page.get_by_role("button", name="Search", exact=True).click()
        page.wait_for_url(re.compile(r"q=monday"))
        rows = items.locator("tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("checkout payment card declined again at the till monday")
        expect(page.get_by_role("heading", name="Items (1)")).to_be_visible()


def test_the_workspace_is_usable_from_the_keyboard(workspace: Workspace, page_for: PageFactory) -> None:
    with page_for(workspace.url) as page:
        sign_in(page, workspace)
        # The first Tab reaches the skip link, which is visible while focused and leads to the content.
        page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Skip to content")
        expect(skip).to_be_focused()
        assert skip.bounding_box() is not None and skip.bounding_box()["x"] >= 0  # type: ignore[index]

        # "/" focuses the search box; typing and Enter searches.
        page.locator("body").click(position={"x": 5, "y": 300})
        page.keyboard.press("/")
        expect(page.get_by_label("Search labels and items")).to_be_focused()
        page.keyboard.type("excel")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"q=excel"))

        # Tab to the theme's link (focus is visible), Enter opens it.
        export_label = label_of(workspace, "export")
        tab_to(page, f'a[href="/themes/{workspace.themes["export"]}"]')
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline not in ("", "none"), "the focused link shows no focus outline"
        page.keyboard.press("Enter")
        page.wait_for_url(f"{workspace.url}/themes/{workspace.themes['export']}")
        expect(page.get_by_role("heading", level=1)).to_have_text(export_label)

        # "g" then "t" goes to triage; "/" on a theme page focuses the theme's item search.
        page.keyboard.press("g")
        page.keyboard.press("t")
        page.wait_for_url(f"{workspace.url}/triage")
        page.go_back()
        page.wait_for_url(f"{workspace.url}/themes/{workspace.themes['export']}")
        page.keyboard.press("/")
        expect(page.get_by_label("Search items")).to_be_focused()


def test_a_viewer_reads_but_is_offered_no_action(workspace: Workspace, page_for: PageFactory) -> None:
    checkout = workspace.themes["checkout"]
    with page_for(workspace.url) as page:
        sign_in(page, workspace, "viewer", next_path=f"/themes/{checkout}")
        expect(page.get_by_role("heading", level=1)).to_have_text(label_of(workspace, "checkout"))
        expect(page.get_by_role("region", name="Actions")).to_have_count(0)
        expect(page.get_by_role("checkbox")).to_have_count(0)
        expect(page.get_by_role("link", name="Admin")).to_have_count(0)
        refused = page.goto(f"/themes/{checkout}/preview?action=rename&label=Mine")
        assert refused is not None and refused.status == 403
        expect(page.get_by_role("alert")).to_contain_text("does not change them")
        screenshot(page, "workspace-error-403")
        assert_accessible(page)
        assert page.goto("/admin") is not None and page.url.endswith("/admin")
        expect(page.get_by_role("heading", level=1)).to_contain_text("403")


def test_every_page_has_a_screenshot_and_no_serious_accessibility_violation(workspace: Workspace,
                                                                           page_for: PageFactory) -> None:
    checkout = workspace.themes["checkout"]
    pages = {"overview": "/?window=90d", "theme": f"/themes/{checkout}", "triage": "/triage", "inbox": "/inbox",
             "preview-rename": f"/themes/{checkout}/preview?action=rename&label=Card+payments+declined",
             "preview-route": f"/themes/{checkout}/preview?action=route",
             "theme-picker": f"/themes/{checkout}?pick=e"}
    with page_for(workspace.url) as page:
        sign_in(page, workspace, "admin")
        for name, path in pages.items():
            answer = page.goto(path)
            assert answer is not None and answer.status == 200, (path, answer and answer.status)
            screenshot(page, f"workspace-{name}")
            assert_accessible(page)
            if name == "inbox":  # the routed checkout ticket is in the payments team's inbox
                expect(page.get_by_role("heading", name=re.compile("payments"))).to_be_visible()
                expect(page.get_by_role("link", name=re.compile("Checkout"))).to_be_visible()

        missing = page.goto("/themes/999999")
        assert missing is not None and missing.status == 404
        expect(page.get_by_role("heading", level=1)).to_contain_text("404")
        screenshot(page, "workspace-error")
        assert_accessible(page)

        pm_id = workspace.scalar(select(User.id).where(User.email == workspace.email("pm")))
        for path in (*ADMIN_PAGES, f"/admin/users/{pm_id}"):
            answer = page.goto(path)
            assert answer is not None and answer.status == 200, (path, answer and answer.status)
            screenshot(page, f"workspace{path.replace('/', '-')}")
            assert_accessible(page)


def test_new_feedback_and_counts_arrive_without_a_reload(workspace: Workspace, page_for: PageFactory) -> None:
    """Last in this file: it adds items and a theme to the shared workspace."""
    with page_for(workspace.url) as page:
        sign_in(page, workspace)
        # The page polls /live every 10 s; Playwright's clock runs that timer on demand, the requests are real.
        page.clock.install()
        with page.expect_response(lambda answer: answer.url.endswith("/live")):
            page.reload()
        note = page.locator("[data-live-note]")
        triage = page.locator('[data-live="triage"]')
        before = int(triage.inner_text())
        with workspace.loop.session() as session:
            pm = session.scalar(select(User).where(User.email == workspace.email("pm")))
            assert pm is not None and nav_counts(session, pm)["triage"] == before
        expect(note).to_have_text("")
        expect(page.get_by_role("link", name="Voucher field hidden")).to_have_count(0)
        page.evaluate("window.notReloaded = true")

        posted = httpx.post(f"{workspace.url}/api/v1/feedback", headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                            json={"text": "the new checkout page hides the voucher field"}, timeout=10)
        assert posted.status_code == 201, posted.text
        with workspace.loop.session() as session:
            session.add(Theme(label="Voucher field hidden", status="new"))
        with page.expect_response(lambda answer: answer.url.endswith("/live")):
            page.clock.run_for(10_000)
        expect(note).to_contain_text("New feedback arrived.")
        expect(triage).to_have_text(str(before + 1))
        # The themes table is refreshed in place: the new theme is listed, and the page was not reloaded.
        expect(page.locator("table[data-theme-table]").get_by_role("link", name="Voucher field hidden")
               ).to_be_visible()
        assert page.evaluate("window.notReloaded === true")
        # What a screen reader hears changes with it: the link's name holds the new count.
        expect(page.get_by_role("navigation", name="Workspace").get_by_role("link", name=re.compile("^Triage"))
               ).to_have_accessible_name(re.compile(rf"^Triage\s*{before + 1} to triage$"))
        screenshot(page, "workspace-overview-live")
        assert_accessible(page)
