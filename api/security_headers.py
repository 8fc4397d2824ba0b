"""Security headers on every response, a pure ASGI middleware.

- ``Content-Security-Policy``: only the server's own resources; scripts only from the server's own files
  (/static/workspace.js: keyboard shortcuts and live counts; no inline script, no eval),
  no framing (``frame-ancestors 'none'``, and ``X-Frame-Options: DENY`` for older browsers). The
  templates' ``<style>`` blocks are allowed by their SHA-256, computed from the templates at start, so an
  injected ``<style>`` element would not apply; ``style`` attributes stay allowed (``style-src-attr``),
  because the share-of-voice bars are sized by one, and an attribute can carry no script.
- The interactive API documentation (``/docs``, ``/redoc``) is FastAPI's page, which loads its scripts from
  a CDN and starts them from an inline script: it gets a policy that allows exactly that and still forbids
  framing. It shows no stored data.
- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin`` (links in tickets and pages must not
  leak theme URLs to other hosts; ``no-referrer`` would also make a browser send ``Origin: null`` on the
  workspace's own form posts, which the pages' same-origin check must refuse).
- ``Cache-Control: no-store`` unless a route chose its own: API answers and dashboard pages carry customer
  feedback, which must not stay in a browser's or a proxy's cache.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TEMPLATES = Path(__file__).resolve().parent / "templates"
STYLE_BLOCK = re.compile(r"<style>(.*?)</style>", re.DOTALL)
DOCS_CDN = "https://cdn.jsdelivr.net"
DOCS_POLICY = ("default-src 'self'; "
               f"script-src 'self' 'unsafe-inline' {DOCS_CDN}; "
               f"style-src 'self' 'unsafe-inline' {DOCS_CDN} https://fonts.googleapis.com; "
               "font-src 'self' https://fonts.gstatic.com; "
               "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
               "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def style_hashes(templates: Path = TEMPLATES) -> list[str]:
    """CSP sources for the templates' static ``<style>`` blocks (one with template code would render differently)."""
    hashes = set()
    for template in sorted(templates.glob("*.html")):
        for block in STYLE_BLOCK.findall(template.read_text(encoding="utf-8")):
            if "{{" not in block and "{%" not in block:
                digest = base64.b64encode(hashlib.sha256(block.encode("utf-8")).digest()).decode()
                hashes.add(f"'sha256-{digest}'")
    return sorted(hashes)


def content_security_policy(styles: Iterable[str]) -> str:
    return ("default-src 'self'; script-src 'self'; connect-src 'self'; "
            f"style-src 'self' {' '.join(styles)}; style-src-attr 'unsafe-inline'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class SecurityHeadersMiddleware:
    """Adds the headers to every HTTP response that does not set its own."""

    def __init__(self, app: ASGIApp, docs_paths: Iterable[str | None] = ()) -> None:
        self.app = app
        self.docs_paths = frozenset(path for path in docs_paths if path)
        common = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                  "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}
        self.headers = {"Content-Security-Policy": content_security_policy(style_hashes()), **common}
        self.docs_headers = {"Content-Security-Policy": DOCS_POLICY, **common}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = self.docs_headers if scope["path"] in self.docs_paths else self.headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for name, value in headers.items():
                    response_headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
