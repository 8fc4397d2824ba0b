"""Closing the loop on Discourse: a reply in the topic the feedback came from.

Not a plugin of its own: ``plugins/discourse.py`` offers these functions as its channel type's
``replies`` capability. Uses Discourse's API (``POST /posts.json`` with ``topic_id`` and ``raw``).
Channel options: ``reply_url`` (the forum's base URL, set by an admin; default ``forum_url``: the host a
webhook header or a stored item names is never used, since the API key goes with the request),
``reply_api_key_env`` (environment variable holding an API key) and ``reply_username`` (default
``system``). The URL obeys the outbound policy (``core.outbound``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.errors import ConfigurationError
from core.outbound import http_client
from core.secrets import secret_from_env
from core.types import ReplyRequest, StoredItem

REQUEST_TIMEOUT_S = 15.0


def forum_url(options: Mapping[str, Any], *keys: str) -> str | None:
    """The forum's base URL from the first of the channel options ``keys`` an admin set."""
    for key in keys:
        if options.get(key):
            return str(options[key]).rstrip("/")
    return None


def thread_of(item: StoredItem) -> str | None:
    """A post's topic: every post of a topic, its opening one included, is answered in the topic."""
    topic = item.metadata.get("topic_id")
    return str(topic) if topic not in (None, "") else None


def opener_id(thread: str) -> str:
    """A topic's opening post is stored as ``topic-<id>`` (see plugins/discourse.py)."""
    return f"topic-{thread}"


def post_reply(request: ReplyRequest) -> str:
    options = request.options
    base = forum_url(options, "reply_url", "forum_url")
    if not base:
        raise ConfigurationError(f"channel {request.channel_name!r}: replies need the 'reply_url' option")
    if not request.thread_id.isdigit():
        raise ValueError(f"{request.thread_id!r} is not a Discourse topic id")
    what = f"channel {request.channel_name!r}: replies"
    api_key = secret_from_env(options, "reply_api_key_env", what, request.settings)
    with http_client(request.settings, what, timeout=REQUEST_TIMEOUT_S) as client:
        response = client.post(f"{base}/posts.json", json={"topic_id": int(request.thread_id), "raw": request.text},
                               headers={"Api-Key": api_key,
                                        "Api-Username": str(options.get("reply_username", "system"))})
    response.raise_for_status()
    answer: Any = response.json()
    return str(answer.get("id"))
