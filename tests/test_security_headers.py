"""Security headers (api/security_headers.py) on every answer, the workspace's above all: a policy that
allows only the server's own script and no framing, nosniff, a same-origin referrer policy, and no caching
of answers that carry customer feedback."""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi.testclient import TestClient
from httpx import Response

from core.loop import FeedbackLoop
from tests.support.themes import CHECKOUT, LOGIN, build_themes
from tests.support.workspace import sign_in

FIXED_HEADERS = {"x-frame-options": "DENY", "x-content-type-options": "nosniff", "referrer-policy": "same-origin"}


def policy(response: Response) -> dict[str, list[str]]:
    """The Content-Security-Policy as directive -> sources."""
    directives = [part.split() for part in response.headers["content-security-policy"].split(";") if part.strip()]
    return {directive[0]: directive[1:] for directive in directives}


def assert_secured(response: Response) -> dict[str, list[str]]:
    for name, value in FIXED_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url, name, response.headers.get(name))
    csp = policy(response)
    assert csp["frame-ancestors"] == ["'none'"] and csp["default-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    return csp


def test_workspace_pages_allow_only_their_own_script_and_no_framing(client: TestClient, auth: dict[str, str],
                                                                   loop: FeedbackLoop) -> None:
    build_themes(loop, CHECKOUT + LOGIN)
    theme_id = client.get("/api/v1/themes", headers=auth).json()[0]["id"]
    sign_in(client, loop)
    for path in ("/", f"/themes/{theme_id}", "/inbox", "/triage", "/signin"):
        page = client.get(path)
        assert page.status_code == 200, path
        csp = assert_secured(page)
        assert csp["script-src"] == ["'self'"]  # the server's own file, never inline script or eval
        assert "'unsafe-inline'" not in csp["style-src"]
        assert page.headers["cache-control"] == "no-store"  # the pages show customers' feedback
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.DOTALL | re.IGNORECASE)
        assert scripts and all('src="/static/' in attributes and not body.strip() for attributes, body in scripts)


def test_the_workspace_styles_come_from_its_stylesheet(client: TestClient) -> None:
    """The page must still look right: its styles load from /static (allowed by 'self'); a <style> block in a
    template would be named in style-src by its SHA-256."""
    page = client.get("/signin")
    assert '<link rel="stylesheet" href="/static/workspace.css">' in page.text
    assert client.get("/static/workspace.css").status_code == 200
    for block in re.findall(r"<style>(.*?)</style>", page.text, re.DOTALL):
        digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy(page)["style-src"]
    assert policy(page)["style-src-attr"] == ["'unsafe-inline'"]  # attributes carry no script


def test_api_answers_carry_the_headers_and_are_not_cached(client: TestClient, auth: dict[str, str]) -> None:
    created = client.post("/api/v1/feedback", json={"text": "the export button is hidden"}, headers=auth)
    assert created.status_code == 201
    answers = [created, client.get("/api/v1/feedback", headers=auth), client.get("/api/v1/themes", headers=auth),
               client.get("/api/v1/feedback"), client.get("/api/v1/themes/999999", headers=auth),
               client.get("/healthz"), client.get("/openapi.json"), client.get("/no/such/page"),
               client.post("/webhooks/nowhere", content=b"{}")]
    for answer in answers:
        assert_secured(answer)
        assert answer.headers["cache-control"] == "no-store", answer.request.url
    assert {answer.status_code for answer in answers} >= {201, 200, 401, 404}


def test_the_api_documentation_gets_a_policy_that_lets_it_load(client: TestClient) -> None:
    """FastAPI's docs page loads its scripts from a CDN and starts them inline; it shows no stored data."""
    page = client.get("/docs")
    assert page.status_code == 200
    csp = assert_secured(page)
    for source in re.findall(r'<script src="(https://[^/"]+)/', page.text):
        assert source in csp["script-src"]
    assert "'unsafe-inline'" in csp["script-src"]
    # Everything else keeps the strict policy.
    assert policy(client.get("/signin"))["script-src"] == ["'self'"]
