"""Closing the loop on Discourse: a reply in the topic the feedback came from.

Not a plugin of its own: ``plugins/discourse.py`` offers these functions as its channel type's
``replies`` capability. Uses Discourse's API (``POST /posts.json`` with ``topic_id`` and ``raw``).
Channel options: ``reply_url`` (the forum's base URL, set by an admin: the host a webhook or an item
names is never used, since the API key goes with the request), ``reply_api_key_env`` (environment
variable holding an API key) and ``reply_username`` (default ``system``).
"""

from __future__ import annotations

from typing import Any

import httpx

from core.errors import ConfigurationError
from core.secrets import secret_from_env
from core.types import ReplyRequest, StoredItem

REQUEST_TIMEOUT_S = 15.0


def thread_of(item: StoredItem) -> str | None:
    """A post's topic: every post of a topic, its opening one included, is answered in the topic."""
    topic = item.metadata.get("topic_id")
    return str(topic) if topic not in (None, "") else None


def opener_id(thread: str) -> str:
    """A topic's opening post is stored as ``topic-<id>`` (see plugins/discourse.py)."""
    return f"topic-{thread}"


def post_reply(request: ReplyRequest) -> str:
    options = request.options
    base = str(options.get("reply_url") or "").rstrip("/")
    if not base:
        raise ConfigurationError(f"channel {request.channel_name!r}: replies need the 'reply_url' option")
    api_key = secret_from_env(options, "reply_api_key_env", f"channel {request.channel_name!r}: replies")
    response = httpx.post(f"{base}/posts.json", timeout=REQUEST_TIMEOUT_S,
                          headers={"Api-Key": api_key, "Api-Username": str(options.get("reply_username", "system"))},
                          json={"topic_id": int(request.thread_id), "raw": request.text})
    response.raise_for_status()
    answer: Any = response.json()
    return str(answer.get("id"))
