"""The channel options of decline alerts, checked on their own (``channels add`` can refuse a bad one early)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidInput

# Options every channel takes for decline alerts (core/community/decline.py), besides its type's own.
VITALITY_OPTIONS = {
    "owner": "the owner told when the channel's activity falls (default: the rules file's [default] owner)",
    "decline_weeks": "weeks of falling posts in a row before the owner is told (default 3; 0: never)",
    "decline_min_posts": "posts in the week a fall starts from for it to count (default 10)",
}
DEFAULT_DECLINE_WEEKS = 3
DEFAULT_MIN_POSTS = 10
# Complete weeks read per check: a fall longer than this is reported from its last LOOKBACK_WEEKS weeks.
LOOKBACK_WEEKS = 26


@dataclass(frozen=True)
class DeclineSettings:
    weeks: int
    min_posts: int
    owner: str | None


def _count_option(options: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = options.get(key, default)
    if isinstance(value, str) and value.strip().isdigit():  # `channels add --option K=V` gives text
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"channel option {key!r} must be a whole number from {low} to {high}")
    return value


def decline_settings(options: Mapping[str, Any]) -> DeclineSettings:
    """The decline options of a channel; a bad value is refused with a message (422, exit code 2)."""
    owner = options.get("owner")
    if owner is not None and (not isinstance(owner, str) or not owner.strip() or len(owner) > 128):
        raise InvalidInput("channel option 'owner' must name an owner (1 to 128 characters)")
    weeks = _count_option(options, "decline_weeks", DEFAULT_DECLINE_WEEKS, 0, LOOKBACK_WEEKS - 1)
    if weeks == 1:
        raise InvalidInput("channel option 'decline_weeks' must be 0 (never) or at least 2")
    return DeclineSettings(weeks=weeks, min_posts=_count_option(options, "decline_min_posts", DEFAULT_MIN_POSTS,
                                                                1, 1_000_000),
                           owner=owner.strip() if isinstance(owner, str) else None)
