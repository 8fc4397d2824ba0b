"""Routing target ``jira``: one Jira issue per theme, through the ``jira`` package (BSD-2-Clause).

Jira Cloud (REST v3, descriptions and comments in Atlassian Document Format) and Server/Data Center
(REST v2, plain text). The issue carries a label derived from the delivery's idempotency key, so a
retry after a crash finds the issue it already created instead of making a second one; growth comments
carry a marker derived from their update key for the same reason.

Target options (``target_options`` in a rule):
``server`` (base URL), ``project`` (key), ``api`` ("3", the default, or "2"), ``issue_type`` (default
"Task"), ``user`` and ``token_env`` (environment variable holding the API token or password),
``labels`` (extra labels), ``priority`` (a priority name, or "auto": High for large or angry themes),
``status_map`` (tracker status -> theme status, see core.routing.tracker_status). The ``jira`` package
makes its own requests, so ``server`` is checked against the outbound policy (``core.outbound``, DNS
included) before each connection; ``requests`` drops the ``Authorization`` header on a redirect to another
host.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from jira import JIRA

from core import hookimpl
from core.outbound import check_url
from core.secrets import optional_secret_from_env
from core.types import (
    DeliveryRequest,
    DeliveryResult,
    TargetType,
    TrackerStatusEvent,
    WebhookRejected,
    WebhookRequest,
)
from plugins.webhook_signing import parse_json, verify

if TYPE_CHECKING:
    from core.settings import Settings

KEY_LABEL_PREFIX = "feedbackloop-"
MARKER_PREFIX = "feedbackloop-update-"
REQUEST_TIMEOUT_S = 20


def key_label(idempotency_key: str) -> str:
    """A Jira label (no spaces, short) that names one theme's ticket in one target."""
    return KEY_LABEL_PREFIX + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]


def update_marker(update_key: str) -> str:
    return MARKER_PREFIX + hashlib.sha256(update_key.encode()).hexdigest()[:16]


def is_cloud(options: Mapping[str, Any]) -> bool:
    return str(options.get("api", "3")) == "3"


def connect(options: Mapping[str, Any], settings: Settings | None = None) -> JIRA:
    if not options.get("server") or not options.get("project"):
        raise ValueError("jira target needs 'server' and 'project' options")
    server = check_url(str(options["server"]), settings, "the jira target")
    token = optional_secret_from_env(options, "token_env", "the jira target's API token", settings)
    basic_auth = (str(options.get("user", "")), token) if token else None
    # max_retries=0: retries belong to the delivery worker, with its backoff and circuit breaker.
    return JIRA(server=server, basic_auth=basic_auth, max_retries=0, timeout=REQUEST_TIMEOUT_S,
                options={"rest_api_version": "3" if is_cloud(options) else "2"})


def adf(text: str, link: str | None = None) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document: lines as paragraphs, "> " lines as quotes."""
    content: list[dict[str, Any]] = []
    for block in text.split("\n\n"):
        lines = [line for line in block.split("\n") if line.strip()]
        if not lines:
            continue
        if all(line.startswith("> ") for line in lines):
            content.append({"type": "blockquote", "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": line[2:]}]} for line in lines]})
            continue
        nodes: list[dict[str, Any]] = []
        for index, line in enumerate(lines):
            if index:
                nodes.append({"type": "hardBreak"})
            if line == link:
                nodes.append({"type": "text", "text": line, "marks": [{"type": "link", "attrs": {"href": line}}]})
            else:
                nodes.append({"type": "text", "text": line})
        content.append({"type": "paragraph", "content": nodes})
    return {"type": "doc", "version": 1, "content": content}


def rich(options: Mapping[str, Any], text: str, link: str | None = None) -> Any:
    return adf(text, link) if is_cloud(options) else text


def priority_name(options: Mapping[str, Any], request: DeliveryRequest) -> str | None:
    wanted = options.get("priority")
    if wanted != "auto":
        return str(wanted) if wanted else None
    theme = request.theme
    return "High" if theme.volume >= 50 or theme.mean_sentiment <= -0.5 else "Medium"


def find_issue(client: JIRA, options: Mapping[str, Any], label: str) -> tuple[str, str] | None:
    """The issue made for this label, with its summary (which names the volume it was made at)."""
    jql = f'project = "{options["project"]}" AND labels = "{label}" ORDER BY created ASC'
    if is_cloud(options):
        found: Any = client.enhanced_search_issues(jql, fields=["summary"], maxResults=1, json_result=True)
    else:
        found = client.search_issues(jql, fields=["summary"], maxResults=1, json_result=True)
    issues = found.get("issues") or []
    return (str(issues[0]["key"]), str(issues[0]["fields"].get("summary"))) if issues else None


def comment_once(client: JIRA, options: Mapping[str, Any], issue_key: str, text: str, marker: str) -> None:
    """Add a comment unless one with this marker is already there (a retry after a lost answer)."""
    for comment in client.comments(issue_key):
        if marker in str(comment.raw.get("body")):
            return
    body: Any = rich(options, f"{text}\n\n{marker}")
    client.add_comment(issue_key, body)


def deliver(request: DeliveryRequest) -> DeliveryResult:
    options = request.options
    client = connect(options, request.settings)
    try:
        link = request.link or request.body.rsplit("\n", 1)[-1]
        server = str(options["server"]).rstrip("/")
        issue_key = request.existing_ref
        if issue_key is None and (found := find_issue(client, options, key_label(request.idempotency_key))):
            issue_key = found[0]
            if found[1] == request.title[:254] and request.event != "spike":
                # Made by an attempt whose answer was lost, and still current: nothing to add.
                return DeliveryResult(external_ref=issue_key, url=f"{server}/browse/{issue_key}")
        if request.event == "spike":
            if issue_key is None:
                raise LookupError("a spike notice goes on the theme's issue, and it has none yet")
            comment_once(client, options, issue_key, f"{request.title}\n\n{request.body}",
                         update_marker(request.idempotency_key))
        elif issue_key is None:
            fields: dict[str, Any] = {
                "project": {"key": str(options["project"])},
                "issuetype": {"name": str(options.get("issue_type", "Task"))},
                "summary": request.title[:254],
                "description": rich(options, request.body, link),
                "labels": ["feedbackloop", key_label(request.idempotency_key),
                           *[str(label).replace(" ", "-") for label in options.get("labels", [])]],
            }
            priority = priority_name(options, request)
            if priority:
                fields["priority"] = {"name": priority}
            issue_key = str(client.create_issue(fields=fields, prefetch=False).key)
        else:
            update = request.update_key or f"{request.idempotency_key}:volume-{request.theme.volume}"
            comment_once(client, options, issue_key,
                         f"The theme grew to {request.theme.volume} items.\n\n{request.body}", update_marker(update))
        return DeliveryResult(external_ref=issue_key, url=f"{server}/browse/{issue_key}")
    finally:
        client.close()  # type: ignore[no-untyped-call]


def read_status(options: Mapping[str, Any], ref: str) -> str | None:
    # A status poll has no request to carry settings: the process's (the loop's own in a deployment) apply.
    client = connect(options)
    try:
        issue = client.issue(ref, fields="status")
        return str(issue.fields.status.name)
    finally:
        client.close()  # type: ignore[no-untyped-call]


STATUS_EVENTS = ("jira:issue_updated",)


def status_webhook(request: WebhookRequest) -> TrackerStatusEvent:
    """Jira's ``jira:issue_updated`` admin webhook, signed with HMAC-SHA256 in ``X-Hub-Signature``."""
    verify(request.secret, request.body, request.headers, "X-Hub-Signature", {})
    payload = parse_json(request.body)
    event = payload.get("webhookEvent") if isinstance(payload, dict) else None
    if event not in STATUS_EVENTS:
        return TrackerStatusEvent(ignored=f"event {event!r} is not handled")
    issue = payload.get("issue")
    fields = issue.get("fields") if isinstance(issue, dict) else None
    tracker_status = fields.get("status") if isinstance(fields, dict) else None
    name = tracker_status.get("name") if isinstance(tracker_status, dict) else None
    if not isinstance(issue, dict) or not isinstance(name, str) or not (issue.get("key") or issue.get("id")):
        raise WebhookRejected(400, "payload needs issue.key (or issue.id) and issue.fields.status.name")
    return TrackerStatusEvent(refs=tuple(str(issue[field]) for field in ("key", "id") if issue.get(field)),
                              status=name)


@hookimpl
def register_target_types(register: Callable[[TargetType], None]) -> None:
    register(TargetType(name="jira", description="Jira Cloud (REST v3) or Server/Data Center (REST v2)",
                        deliver=deliver, read_status=read_status, status_webhook=status_webhook))
