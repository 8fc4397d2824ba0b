"""Closing the loop on GitHub: a comment on the issue the feedback came from.

Not a plugin of its own: ``plugins/github.py`` offers these functions as its channel type's ``replies``
capability. REST ``POST /repos/{owner}/{repo}/issues/{number}/comments``. Discussions have no REST
endpoint for comments, so their threads get no reply. Channel options: ``reply_token_env`` (environment
variable holding a token with issues:write), ``reply_repositories`` (required: comma-separated
``owner/repo`` or ``owner/*`` that may be commented on; the repository comes from the stored item, so the
channel says which ones it may be) and ``reply_api_url`` (default https://api.github.com, or your GitHub
Enterprise API; it obeys the outbound policy, ``core.outbound``).
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import Any

from core.errors import ConfigurationError
from core.outbound import http_client
from core.secrets import secret_from_env
from core.types import ReplyRequest, StoredItem

REQUEST_TIMEOUT_S = 15.0
DEFAULT_API = "https://api.github.com"
# GitHub's own rules for owner and repository names: nothing here can climb out of the API path.
REPOSITORY = re.compile(r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$")


def thread_of(item: StoredItem) -> str | None:
    """``owner/repo#number`` for issues and their comments; None for discussions (no REST endpoint)."""
    metadata = item.metadata
    if str(metadata.get("github_event", "")).startswith("discussion"):
        return None
    if not metadata.get("repository") or metadata.get("number") is None:
        return None
    return f"{metadata['repository']}#{metadata['number']}"


def check_repository(request: ReplyRequest, repository: str) -> None:
    """The thread's repository must be one the channel's ``reply_repositories`` names."""
    allowed = [part.strip().lower() for part in str(request.options.get("reply_repositories") or "").split(",")
               if part.strip()]
    if not allowed:
        raise ConfigurationError(f"channel {request.channel_name!r}: replies need the 'reply_repositories' option "
                                 "(owner/repo or owner/*, comma-separated)")
    if not REPOSITORY.match(repository) or repository.startswith(".") or ".." in repository:
        raise ValueError(f"{repository!r} is not a GitHub repository name")
    if not any(fnmatchcase(repository.lower(), pattern) for pattern in allowed):
        raise ConfigurationError(f"channel {request.channel_name!r}: {repository!r} is not in 'reply_repositories'")


def post_reply(request: ReplyRequest) -> str:
    repository, _, number = request.thread_id.rpartition("#")
    if not repository or not number.isdigit():
        raise ValueError(f"{request.thread_id!r} does not name a GitHub issue (owner/repo#number)")
    check_repository(request, repository)
    what = f"channel {request.channel_name!r}: replies"
    token = secret_from_env(request.options, "reply_token_env", what, request.settings)
    api = str(request.options.get("reply_api_url") or DEFAULT_API).rstrip("/")
    with http_client(request.settings, what, timeout=REQUEST_TIMEOUT_S) as client:
        response = client.post(f"{api}/repos/{repository}/issues/{number}/comments", json={"body": request.text},
                               headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                                        "X-GitHub-Api-Version": "2022-11-28"})
    response.raise_for_status()
    answer: Any = response.json()
    return str(answer.get("id"))
