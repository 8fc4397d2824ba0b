"""A local HTTP server that serves recorded responses (status, headers, body per path and query) and logs requests.

Used by the polled-channel tests (feeds, App Store, Reddit, Mastodon). Typical use::

    with RecordedHttp() as server:
        server.add("/feed.xml", Recorded(200, body=Path("tests/data/feeds/atom.xml").read_bytes(),
                                         headers={"Content-Type": "application/atom+xml", "ETag": '"v1"'}))
        server.add("/api/v1/timelines/tag/x", Recorded(429, headers={"Retry-After": "30"}),
                   Recorded.json(200, [{"id": "1"}]), query="limit=40")
        ... poll against server.url("/feed.xml") ...
        assert [r.path for r in server.requests] == [...]

Matching: a route added with ``query=`` matches only that query (order of the parameters does not matter;
``query={"a": "1"}`` works too); a route added without one matches the path with any query. Exact-query routes
win. Each request to a route takes its next response; the last one repeats, so ``add(path, Recorded(429, ...),
Recorded(200, ...))`` answers 429 once and 200 from then on. A response may also be a callable taking the
``SeenRequest`` and returning a ``Recorded`` (e.g. to answer 304 when ``If-None-Match`` matches). Unmatched
requests get 404 and are logged too. ``server.requests`` is the log of every request, in order, with headers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit


@dataclass(frozen=True)
class Recorded:
    """One recorded answer: status, headers and body bytes."""

    status: int = 200
    body: bytes | str = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Recorded:
        """An answer whose body is ``payload`` as JSON (Content-Type set unless given)."""
        return cls(status, json.dumps(payload), {"Content-Type": "application/json", **(headers or {})})


@dataclass(frozen=True)
class SeenRequest:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def param(self, name: str) -> str | None:
        """The first value of query parameter ``name``, or None."""
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        """A request header, matched case-insensitively."""
        return next((value for key, value in self.headers.items() if key.lower() == name.lower()), None)


Responder = Recorded | Callable[[SeenRequest], Recorded]


def _query_key(query: str | Mapping[str, str] | None) -> tuple[tuple[str, str], ...] | None:
    if query is None:
        return None
    pairs = parse_qsl(query, keep_blank_values=True) if isinstance(query, str) else list(query.items())
    return tuple(sorted(pairs))


class RecordedHttp:
    """The server: start it with ``with RecordedHttp() as server``; ``server.base_url`` is http://127.0.0.1:PORT."""

    def __init__(self) -> None:
        self.requests: list[SeenRequest] = []
        self._routes: dict[tuple[str, tuple[tuple[str, str], ...] | None], list[Responder]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.base_url = ""

    def add(self, path: str, *responses: Responder, query: str | Mapping[str, str] | None = None) -> None:
        """Answer requests to ``path`` (and ``query`` if given) with ``responses`` in turn, the last repeating."""
        if not responses:
            raise ValueError("add() needs at least one response")
        with self._lock:
            self._routes[(path, _query_key(query))] = list(responses)

    def url(self, path: str, **params: str) -> str:
        """The absolute URL of ``path`` on this server, with ``params`` as its query."""
        return self.base_url + path + (("?" + urlencode(params)) if params else "")

    def requests_to(self, path: str) -> list[SeenRequest]:
        """The logged requests for ``path`` (any query), in order."""
        return [request for request in self.requests if request.path == path]

    def _answer(self, request: SeenRequest) -> Recorded:
        with self._lock:
            self.requests.append(request)
            pairs = tuple(sorted((key, value) for key, values in request.query.items() for value in values))
            queue = self._routes.get((request.path, pairs)) or self._routes.get((request.path, None))
            if not queue:
                return Recorded(404, "no recorded response for this path and query")
            responder = queue.pop(0) if len(queue) > 1 else queue[0]
        return responder(request) if callable(responder) else responder

    def __enter__(self) -> RecordedHttp:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                query: dict[str, list[str]] = {}
                for key, value in parse_qsl(parts.query, keep_blank_values=True):
                    query.setdefault(key, []).append(value)
                seen = SeenRequest(self.command, parts.path, query, dict(self.headers.items()),
                                   self.rfile.read(length) if length else b"")
                answer = owner._answer(seen)
                body = answer.body.encode() if isinstance(answer.body, str) else answer.body
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                if answer.status not in (204, 304):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD" and answer.status not in (204, 304):
                    self.wfile.write(body)

            do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
