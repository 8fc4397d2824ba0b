"""Browser tests: Debian's Chromium driven by Playwright, accessibility checked by axe-core, screenshots kept.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium`` (``tests/browser/install.sh``
installs it, and the npm packages under ``tests/browser/node``; ``FEEDBACKLOOP_TEST_CHROMIUM`` names another
Chromium binary). Without them the browser tests skip; with ``CI=true`` they fail. Screenshots go to
``$FEEDBACKLOOP_TEST_ARTIFACTS/screenshots`` (default ``tests/artifacts/screenshots``, ignored by git), so a
person can look at what the tests saw.

axe-core is evaluated in the page through the DevTools protocol (``page.evaluate``), which the page's
Content-Security-Policy does not govern: the app's strict policy stays in force for the app's own scripts,
and no context needs ``bypass_csp``.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.env import IN_CI

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REPOSITORY = Path(__file__).resolve().parents[2]
NODE_DIR = REPOSITORY / "tests" / "browser" / "node"
CHROMIUM = Path(os.environ.get("FEEDBACKLOOP_TEST_CHROMIUM", "/usr/bin/chromium"))
AXE_SCRIPT = NODE_DIR / "node_modules" / "axe-core" / "axe.min.js"
VIEWPORT_WIDTH, VIEWPORT_HEIGHT = 1280, 800
# The impacts that fail a page; "minor" and "moderate" findings are reported by axe but do not fail a test.
FAILING_IMPACTS = ("serious", "critical")


def artifacts_dir() -> Path:
    return Path(os.environ.get("FEEDBACKLOOP_TEST_ARTIFACTS", REPOSITORY / "tests" / "artifacts"))


def missing_browser_tools() -> list[str]:
    """What the browser tests need and this machine lacks (``tests/browser/install.sh`` installs it)."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if not AXE_SCRIPT.exists():
        missing.append(f"{AXE_SCRIPT} (npm ci in {NODE_DIR})")
    if shutil.which("node") is None:
        missing.append("node (apt-get install nodejs)")
    return missing


def require_browser_tools() -> None:
    missing = missing_browser_tools()
    if not missing:
        return
    message = "browser tests need " + ", ".join(missing) + "; run tests/browser/install.sh"
    if IN_CI:
        pytest.fail(f"{message} (required with CI=true)")
    pytest.skip(f"{message} (runs, never skips, with CI=true)")


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Browser]:
    """One headless Chromium per test module (each test gets its own context, so no shared cookies).

    Per module, not per session: while Playwright's sync API is started, asyncio sees its event loop as
    running in this thread, so ``asyncio.run`` in any later test would fail until it stops.
    """
    require_browser_tools()
    from playwright.sync_api import sync_playwright

    # Chromium's sandbox needs user namespaces, which a root process in a container seldom has.
    arguments = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=arguments)
        try:
            yield browser
        finally:
            browser.close()


PageFactory = Callable[[str], AbstractContextManager["Page"]]


@pytest.fixture
def page_for(chromium_browser: Browser) -> PageFactory:
    """``with page_for(app_url) as page:`` a page in a fresh context (own cookies), relative URLs on ``app_url``."""

    @contextmanager
    def open_page(app_url: str) -> Iterator[Page]:
        context = chromium_browser.new_context(base_url=app_url,
                                               viewport={"width": VIEWPORT_WIDTH, "height": VIEWPORT_HEIGHT})
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            context.close()

    return open_page


def screenshot(page: Page, name: str) -> Path:
    """The whole page as ``screenshots/<name>.png`` in the artifacts folder; returns the file."""
    safe_name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "page"
    path = artifacts_dir() / "screenshots" / f"{safe_name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def axe_violations(page: Page, impacts: tuple[str, ...] = FAILING_IMPACTS) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now, those of ``impacts`` only."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE_SCRIPT.read_text(encoding="utf-8") + "\n;undefined")
    results: dict[str, Any] = page.evaluate(
        "() => window.axe.run(document, {resultTypes: ['violations']})")
    return [violation for violation in results["violations"] if violation.get("impact") in impacts]


def describe_violations(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']} <{violation['helpUrl']}>")
        for node in violation["nodes"][:10]:
            lines.append(f"    at {' '.join(map(str, node['target']))}: {node.get('failureSummary', '')!r}")
    return "\n".join(lines)


def assert_accessible(page: Page) -> None:
    """Fails listing axe-core's serious and critical violations (rule, impact, help, the nodes at fault)."""
    violations = axe_violations(page)
    assert not violations, f"accessibility violations on {page.url}:\n{describe_violations(violations)}"


@contextmanager
def serve_html(pages: Mapping[str, str], headers: Mapping[str, str] | None = None) -> Iterator[str]:
    """A tiny HTTP server on a free loopback port answering ``pages`` (path -> HTML); yields its base URL."""
    extra_headers = dict(headers or {})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path.split("?", 1)[0])
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            for name, value in extra_headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write((body if body is not None else "<!doctype html><title>Not found</title>").encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
