"""Closing the loop on GitHub: a comment on the issue the feedback came from (``reply_to_thread``).

REST ``POST /repos/{owner}/{repo}/issues/{number}/comments``. Discussions have no REST endpoint for
comments, so their threads are left to a digest. Channel options: ``reply_token_env`` (environment
variable holding a token with issues:write) and ``reply_api_url`` (default https://api.github.com,
or your GitHub Enterprise API).
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from core import hookimpl
from core.types import ReplyRequest

REQUEST_TIMEOUT_S = 15.0
DEFAULT_API = "https://api.github.com"


@hookimpl
def reply_to_thread(request: ReplyRequest) -> str | None:
    if request.channel_type != "github" or str(request.metadata.get("github_event", "")).startswith("discussion"):
        return None
    repository, _, number = request.thread_id.rpartition("#")
    if not repository or not number.isdigit():
        return None
    token_env = request.options.get("reply_token_env")
    token = os.environ.get(str(token_env)) if token_env else None
    if not token:
        raise ValueError(f"channel {request.channel_name!r}: replies need the 'reply_token_env' option and that "
                         f"environment variable set")
    api = str(request.options.get("reply_api_url") or DEFAULT_API).rstrip("/")
    response = httpx.post(f"{api}/repos/{repository}/issues/{number}/comments", json={"body": request.text},
                          timeout=REQUEST_TIMEOUT_S,
                          headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                                   "X-GitHub-Api-Version": "2022-11-28"})
    response.raise_for_status()
    answer: Any = response.json()
    return str(answer.get("id"))
