"""What the Reddit and Mastodon pollers share: a ``requests`` session under the outbound policy, and rate limits.

praw and Mastodon.py connect by themselves through ``requests``, not through ``core.outbound.http_client``;
both accept a session, so each fetch hands them a ``GuardedSession`` whose every request (token requests
included) is checked with ``core.outbound.check_url`` first, follows no redirect and ignores proxies and
``.netrc``. The session keeps the last response, so the rate-limit headers the libraries do not surface can be
read, and a 429's ``Retry-After`` becomes ``PollThrottled``.

A source that says "no requests left until T" on a successful answer gets nothing more before T: the wait is
kept in the cursor (``not_before``, epoch seconds), stored with the page, and the next fetch raises
``PollThrottled`` without calling out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from core.clock import parse_timestamp, utcnow
from core.errors import InvalidInput
from core.outbound import OutboundRefused, check_url
from core.settings import Settings
from core.types import PollThrottled

# When a source says to wait without saying how long (a bare 429): a minute, then the framework's backoff.
DEFAULT_WAIT_S = 60.0
# Nobody's rate-limit window is longer than a day; a larger value is a malformed header, not a plan.
MAX_WAIT_S = 24 * 3600.0
NOT_BEFORE = "not_before"


class GuardedSession(requests.Session):
    """A ``requests.Session`` for client libraries: each URL checked against the outbound policy, no redirects."""

    def __init__(self, settings: Settings | None, what: str) -> None:
        super().__init__()
        # Proxies would resolve names themselves, beyond the check; .netrc could add credentials we never chose.
        self.trust_env = False
        self._settings = settings
        self._what = what
        self.refused: OutboundRefused | None = None
        self.last_response: requests.Response | None = None

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        try:
            check_url(str(request.url), self._settings, self._what)
        except OutboundRefused as error:
            # The libraries wrap whatever a session raises in their own errors; the fetch re-raises this one.
            self.refused = error
            raise
        kwargs["allow_redirects"] = False  # a redirect is answered as it is, never followed
        response = super().send(request, **kwargs)
        self.last_response = response
        return response


def _seconds(value: float) -> float:
    return min(max(value, 0.0), MAX_WAIT_S) if math.isfinite(value) else DEFAULT_WAIT_S


def retry_after_s(value: str | None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds from now, or None when absent or unreadable."""
    if not value:
        return None
    try:
        return _seconds(float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return _seconds((moment - utcnow()).total_seconds())


def reset_in_s(value: str | None) -> float | None:
    """A rate-limit reset header as seconds from now: seconds (Reddit) or an ISO 8601 time (Mastodon)."""
    if not value:
        return None
    try:
        return _seconds(float(value))
    except ValueError:
        moment = parse_timestamp(value)
        return _seconds((moment - utcnow()).total_seconds()) if moment and moment.tzinfo else None


def remaining(headers: Mapping[str, str], name: str) -> float | None:
    try:
        return float(headers[name])
    except (KeyError, ValueError):
        return None


def throttled(source: str, response: requests.Response | None, reset_header: str) -> PollThrottled:
    """``PollThrottled`` for a refused request: ``Retry-After`` first, then the source's reset header."""
    headers = response.headers if response is not None else {}
    wait = retry_after_s(headers.get("Retry-After"))
    if wait is None:
        wait = reset_in_s(headers.get(reset_header))
    return PollThrottled(f"{source} asks to wait (rate limited)", DEFAULT_WAIT_S if wait is None else wait)


def not_before(response: requests.Response | None, remaining_header: str, reset_header: str) -> float | None:
    """When the source said no requests are left (remaining 0 on a success): the epoch second it resets."""
    if response is None:
        return None
    left = remaining(response.headers, remaining_header)
    if left is None or left > 0:
        return None
    wait = reset_in_s(response.headers.get(reset_header))
    return utcnow().timestamp() + (DEFAULT_WAIT_S if wait is None else wait)


def wait_if_told(source: str, cursor: Mapping[str, Any]) -> None:
    """Raise ``PollThrottled`` while the cursor's ``not_before`` (from the last answer's headers) lies ahead."""
    until = cursor.get(NOT_BEFORE)
    if isinstance(until, int | float) and until > utcnow().timestamp():
        raise PollThrottled(f"{source} said its rate limit was spent", _seconds(until - utcnow().timestamp()))


def bounded_int(options: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    """An integer option within [low, high]; ``InvalidInput`` naming the option otherwise."""
    raw = options.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(str(raw))
    except ValueError as error:
        raise InvalidInput(f"option {name!r} must be a whole number, not {raw!r}") from error
    if not low <= value <= high:
        raise InvalidInput(f"option {name!r} must be between {low} and {high}, not {value}")
    return value


def flag(options: Mapping[str, Any], name: str) -> bool:
    """A true/false option; ``InvalidInput`` for anything else."""
    raw = options.get(name)
    if raw in (None, "") or raw is False:
        return False
    if raw is True:
        return True
    text = str(raw).strip().lower()
    if text in {"true", "1", "yes", "on"}:
        return True
    if text in {"false", "0", "no", "off"}:
        return False
    raise InvalidInput(f"option {name!r} must be true or false, not {raw!r}")
