"""Closing the loop on Discourse: a reply in the topic the feedback came from (``reply_to_thread``).

Uses Discourse's API (``POST /posts.json`` with ``topic_id`` and ``raw``). Channel options:
``reply_url`` (the forum's base URL; default: the instance the webhook came from), ``reply_api_key_env``
(environment variable holding an API key) and ``reply_username`` (default ``system``).
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from core import hookimpl
from core.types import ReplyRequest

REQUEST_TIMEOUT_S = 15.0


@hookimpl
def reply_to_thread(request: ReplyRequest) -> str | None:
    if request.channel_type != "discourse":
        return None
    options = request.options
    base = str(options.get("reply_url") or request.metadata.get("discourse_instance") or "").rstrip("/")
    key_env = options.get("reply_api_key_env")
    api_key = os.environ.get(str(key_env)) if key_env else None
    if not base or not api_key:
        raise ValueError(f"channel {request.channel_name!r}: replies need 'reply_url' and 'reply_api_key_env' "
                         f"options, and that environment variable set")
    response = httpx.post(f"{base}/posts.json", timeout=REQUEST_TIMEOUT_S,
                          headers={"Api-Key": api_key, "Api-Username": str(options.get("reply_username", "system"))},
                          json={"topic_id": int(request.thread_id), "raw": request.text})
    response.raise_for_status()
    answer: Any = response.json()
    return str(answer.get("id"))
