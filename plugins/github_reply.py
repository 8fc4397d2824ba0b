"""Closing the loop on GitHub: a comment on the issue the feedback came from.

Not a plugin of its own: ``plugins/github.py`` offers these functions as its channel type's ``replies``
capability. REST ``POST /repos/{owner}/{repo}/issues/{number}/comments``. Discussions have no REST
endpoint for comments, so their threads get no reply. Channel options: ``reply_token_env`` (environment
variable holding a token with issues:write) and ``reply_api_url`` (default https://api.github.com, or
your GitHub Enterprise API).
"""

from __future__ import annotations

from typing import Any

import httpx

from core.secrets import secret_from_env
from core.types import ReplyRequest, StoredItem

REQUEST_TIMEOUT_S = 15.0
DEFAULT_API = "https://api.github.com"


def thread_of(item: StoredItem) -> str | None:
    """``owner/repo#number`` for issues and their comments; None for discussions (no REST endpoint)."""
    metadata = item.metadata
    if str(metadata.get("github_event", "")).startswith("discussion"):
        return None
    if not metadata.get("repository") or metadata.get("number") is None:
        return None
    return f"{metadata['repository']}#{metadata['number']}"


def post_reply(request: ReplyRequest) -> str:
    repository, _, number = request.thread_id.rpartition("#")
    if not repository or not number.isdigit():
        raise ValueError(f"{request.thread_id!r} does not name a GitHub issue (owner/repo#number)")
    token = secret_from_env(request.options, "reply_token_env", f"channel {request.channel_name!r}: replies")
    api = str(request.options.get("reply_api_url") or DEFAULT_API).rstrip("/")
    response = httpx.post(f"{api}/repos/{repository}/issues/{number}/comments", json={"body": request.text},
                          timeout=REQUEST_TIMEOUT_S,
                          headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                                   "X-GitHub-Api-Version": "2022-11-28"})
    response.raise_for_status()
    answer: Any = response.json()
    return str(answer.get("id"))
