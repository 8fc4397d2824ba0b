"""Built-in intake channel type ``github``: a repository's or organisation's webhook.

Add a webhook on GitHub (content type ``application/json``, a secret, events: Issues, Issue comments,
Discussions, Discussion comments) pointing at ``/webhooks/NAME``. Handled: ``issues`` (opened, edited,
closed, reopened, deleted), ``issue_comment`` and ``discussion_comment`` (created, edited, deleted),
``discussion`` (created, edited, closed, reopened, deleted); ``ping`` and everything else are ignored.
Bots (``type: Bot`` or a ``[bot]`` login) are always skipped.

Options: ``exclude_members`` (default false: skip authors whose association is OWNER, MEMBER or
COLLABORATOR), ``exclude_labels`` (comma-separated), ``allow_unsigned`` (trusted networks only).

Metadata follows the community conventions: ``thread`` (``owner/repo#number``), ``opens_thread`` (an
issue or a discussion itself) and ``staff`` (association OWNER, MEMBER or COLLABORATOR; left out with
``exclude_members``). Staff posts are stored for the community figures but kept out of themes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from core import hookimpl
from core.clock import parse_timestamp
from core.types import ChannelType, IntakeResult, ItemDraft, ThreadReplies, WebhookRejected, WebhookRequest
from plugins.github_reply import post_reply, thread_of
from plugins.webhook_signing import UNSIGNED_OPTION, delivery_key, parse_json, split_option, truthy, verify

SIGNATURE_HEADER = "X-Hub-Signature-256"
OPTIONS = {
    **UNSIGNED_OPTION,
    "exclude_members": "true: skip authors whose association is OWNER, MEMBER or COLLABORATOR (default false)",
    "exclude_labels": "comma-separated labels whose issues and discussions are skipped",
    "reply_token_env": "environment variable holding a token with issues:write, for replies",
    "reply_repositories": "comma-separated owner/repo or owner/* that replies may go to (required for replies)",
    "reply_api_url": "GitHub's API, or your GitHub Enterprise API (default https://api.github.com)",
}
TEAM_ASSOCIATIONS = {"OWNER", "MEMBER", "COLLABORATOR"}
# What an edit on GitHub may change on a stored item; the repository, event and number never move.
EDITABLE_METADATA = frozenset({"state", "labels", "author_association", "category"})
# event -> (payload key of the thing said, actions that carry its current text)
HANDLED = {
    "issues": ("issue", {"opened", "edited", "closed", "reopened"}),
    "issue_comment": ("comment", {"created", "edited"}),
    "discussion": ("discussion", {"created", "edited", "closed", "reopened", "answered"}),
    "discussion_comment": ("comment", {"created", "edited"}),
}
COMMENT_PARENT = {"issue_comment": "issue", "discussion_comment": "discussion"}


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def is_bot(user: Any) -> bool:
    if not isinstance(user, dict):
        return False
    return user.get("type") == "Bot" or str(user.get("login", "")).endswith("[bot]")


def handle_webhook(request: WebhookRequest) -> IntakeResult:
    verify(request.secret, request.body, request.headers, SIGNATURE_HEADER, request.options)
    event = request.headers.get("x-github-event", "")
    if not event:
        raise WebhookRejected(400, "missing X-GitHub-Event header")
    if event not in HANDLED:  # decided before parsing: ping and friends need nothing from the body
        return IntakeResult(ignored=f"GitHub event {event!r} is not feedback")
    result = _handle(request, event, parse_json(request.body))
    # X-GitHub-Delivery is not signed (the signature covers the body): only its digest with the body is kept.
    result.delivery_id = delivery_key(request.headers.get("x-github-delivery"), request.body)
    return result


def _relabelled(event: str, payload: dict[str, Any]) -> bool:
    """Whether the body's shape contradicts the unsigned X-GitHub-Event header.

    The signature covers only the body, so a captured ``issue_comment`` deletion re-sent as ``issues``
    would otherwise delete the issue: comment events carry their parent, the others carry no comment.
    """
    if event in COMMENT_PARENT:
        return not isinstance(payload.get(COMMENT_PARENT[event]), dict)
    return "comment" in payload


def _handle(request: WebhookRequest, event: str, payload: Any) -> IntakeResult:
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "a GitHub event body must be a JSON object")
    key, actions = HANDLED[event]
    action = payload.get("action")
    thing = payload.get(key)
    if not isinstance(thing, dict) or thing.get("id") is None:
        raise WebhookRejected(400, f"a GitHub {event} event needs a {key!r} object with an 'id'")
    if _relabelled(event, payload):
        return IntakeResult(ignored=f"the signed body is not a GitHub {event} event (the event header is unsigned)")
    external_id = f"{event}-{thing['id']}"
    if action == "deleted":
        return IntakeResult(deleted_ids=[external_id])
    if action not in actions:
        return IntakeResult(ignored=f"GitHub {event} action {action!r} is not handled")
    options = request.options
    author = thing.get("user")
    ignored = _ignored_author(options, author, thing.get("author_association"))
    if ignored is not None:
        return IntakeResult(ignored=ignored)
    parent = payload.get("issue") if event == "issue_comment" else payload.get("discussion")
    labels = _labels(thing, parent)
    excluded = split_option(options, "exclude_labels") & {label.lower() for label in labels}
    if excluded:
        return IntakeResult(ignored=f"label {sorted(excluded)[0]!r} is excluded")
    text = _text(thing)
    if not text:
        return IntakeResult(ignored=f"{event} {thing['id']} has no text")
    metadata = _metadata(event, payload, thing, parent, labels)
    metadata.update(_community_metadata(options, event, metadata))
    draft = ItemDraft(text=text, channel=request.channel_name, external_id=external_id,
                      author=author.get("login") if isinstance(author, dict) else None,
                      url=thing.get("html_url"), created_at=parse_timestamp(thing.get("created_at")), metadata=metadata,
                      updated_at=parse_timestamp(thing.get("updated_at")), editable_metadata=EDITABLE_METADATA)
    return IntakeResult(items=[draft])


def _community_metadata(options: Mapping[str, Any], event: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """The thread conventions (docs/plugins.md); ``staff`` only where members' posts are kept."""
    found: dict[str, Any] = {"opens_thread": event in {"issues", "discussion"}}
    if metadata.get("repository") and metadata.get("number") is not None:
        found["thread"] = f"{metadata['repository']}#{metadata['number']}"
    if not truthy(options.get("exclude_members", False)):
        found["staff"] = metadata.get("author_association") in TEAM_ASSOCIATIONS
    return found


def _ignored_author(options: Mapping[str, Any], author: Any, association: Any) -> str | None:
    """Why the author's words are not feedback (a bot, or the team when members are excluded), if so."""
    if is_bot(author):
        return "posted by a bot"
    if truthy(options.get("exclude_members", False)) and association in TEAM_ASSOCIATIONS:
        return f"posted by a repository {association.lower()}"
    return None


def _labels(thing: dict[str, Any], parent: Any) -> list[str]:
    """The thing's own labels, else (a comment has none) its issue's or discussion's."""
    return [str(label.get("name")) for label in (thing.get("labels") or (parent or {}).get("labels") or [])
            if isinstance(label, dict)]


def _text(thing: dict[str, Any]) -> str:
    body = str(thing.get("body") or "").strip()
    title = str(thing.get("title") or "").strip()
    return f"{title}\n\n{body}" if title and body else title or body


def _metadata(event: str, payload: dict[str, Any], thing: dict[str, Any], parent: Any,
              labels: list[str]) -> dict[str, Any]:
    repository = _object(payload.get("repository"))
    metadata: dict[str, Any] = {
        "repository": repository.get("full_name"),
        "github_event": event,
        "number": thing.get("number", (parent or {}).get("number")),
        "state": thing.get("state", (parent or {}).get("state")),
        "labels": labels,
        "author_association": thing.get("author_association"),
    }
    if event == "discussion" and isinstance(thing.get("category"), dict):
        metadata["category"] = thing["category"].get("name")
    return metadata


@hookimpl
def register_channel_types(register: Callable[[ChannelType], None]) -> None:
    register(ChannelType(name="github", description="GitHub issues, discussions and comments webhook",
                         handle_webhook=handle_webhook,
                         replies=ThreadReplies(thread_of=thread_of, post=post_reply), options=OPTIONS))
