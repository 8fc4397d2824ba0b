"""What the polled channel types share: one GET through the outbound policy, the source's "wait" answers.

``fetch_url`` turns 429 (and 503 with ``Retry-After``) into ``PollThrottled`` with the wait the source
asked for, any other error status into ``PollFailed``, and caps the body it reads (a feed is small; a
server that streams forever is not). Used by ``plugins/feeds.py`` and ``plugins/app_store.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from core import __version__
from core.clock import utcnow
from core.errors import FeedbackloopError
from core.outbound import http_client
from core.types import PollRequest, PollThrottled

USER_AGENT = f"feedbackloop/{__version__} (feedback poller)"
MAX_BODY_BYTES = 8 * 1024 * 1024
TIMEOUT_S = 30.0
# A 429 without Retry-After: wait this long rather than ask again at once.
DEFAULT_RETRY_AFTER_S = 60.0


class PollFailed(FeedbackloopError):
    """A source answered with an error, or with something that cannot be read; retried with backoff."""

    status_code = 502


def retry_after_seconds(value: str | None, default_s: float = DEFAULT_RETRY_AFTER_S) -> float:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110, 10.2.3); ``default_s`` when absent
    or unreadable."""
    if not value or not value.strip():
        return default_s
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return default_s
        if moment.tzinfo is None:
            return default_s
        seconds = (moment - utcnow()).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else default_s


def fetch_url(request: PollRequest, what: str, url: str, headers: Mapping[str, str] | None = None,
              params: Mapping[str, Any] | None = None) -> tuple[httpx.Response, bytes]:
    """GET ``url`` for a polled channel: (response, body) for 2xx and 304; raises PollThrottled or PollFailed."""
    sent = {"User-Agent": USER_AGENT, **(headers or {})}
    with http_client(request.settings, what, timeout=TIMEOUT_S) as client:
        try:
            with client.stream("GET", url, headers=sent, params=dict(params or {})) as response:
                body = _read_capped(response, what)
        except httpx.HTTPError as error:
            raise PollFailed(f"{what}: {type(error).__name__}: {error}") from error
    status = response.status_code
    if status == 429 or (status == 503 and response.headers.get("retry-after")):
        raise PollThrottled(f"{what}: HTTP {status} from {response.url.host}",
                            retry_after_seconds(response.headers.get("retry-after")))
    if status >= 300 and status != 304:
        raise PollFailed(f"{what}: HTTP {status} from {response.url.host}")
    return response, body


def _read_capped(response: httpx.Response, what: str) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PollFailed(f"{what}: the answer is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB")
        chunks.append(chunk)
    return b"".join(chunks)
