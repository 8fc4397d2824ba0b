"""The options every polled channel takes, checked when the channel is added and read at each poll."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from core.errors import InvalidInput
from core.types import ChannelType

# Faster than this is no longer polling but hammering: public sources ban clients that do it.
MIN_INTERVAL_S = 30.0
MAX_INTERVAL_S = 7 * 24 * 3600.0


def poll_interval(options: Mapping[str, Any], default_s: float) -> float:
    """The channel's ``interval_s`` option, else the poller's default, within the allowed range."""
    raw = options.get("interval_s")
    if raw in (None, ""):
        return max(MIN_INTERVAL_S, default_s)
    try:
        value = float(raw)
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"option 'interval_s' must be a number of seconds, not {raw!r}") from error
    if not math.isfinite(value) or not MIN_INTERVAL_S <= value <= MAX_INTERVAL_S:
        raise InvalidInput(f"option 'interval_s' must be between {MIN_INTERVAL_S:.0f} and {MAX_INTERVAL_S:.0f} "
                           f"seconds, not {raw!r}")
    return value


def check_poll_options(channel_type: ChannelType, options: Mapping[str, Any]) -> None:
    """A polled type's options as ``channels add`` checks them: its pace, then the type's own check."""
    poller = channel_type.poll
    if poller is None:
        return
    poll_interval(options, poller.interval_s)
    if poller.check_options is not None:
        poller.check_options(options)
