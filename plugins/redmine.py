"""Routing target ``redmine``: one Redmine issue per theme over its REST API, status read back by polling.

The issue's description ends with a marker derived from the delivery's idempotency key, and Redmine can
filter issues by description, so a retry after a crash finds the issue it already made. Growth notes
carry a marker of their update key the same way. Redmine 5 has no webhooks: the worker polls each
issue's status (``core.routing.tracker_status``).

Target options: ``url``, ``project`` (identifier), ``api_key_env`` (environment variable holding the
REST API key), ``tracker_id`` and ``priority_id`` (optional), ``status_map`` (tracker status -> theme
status). The URL obeys the outbound policy (``core.outbound``) on every request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from core import hookimpl
from core.outbound import http_client
from core.secrets import secret_from_env
from core.types import DeliveryRequest, DeliveryResult, TargetType

if TYPE_CHECKING:
    from core.settings import Settings

REQUEST_TIMEOUT_S = 20.0


def marker(key: str) -> str:
    return "feedbackloop-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def client_for(options: Mapping[str, Any], settings: Settings | None = None) -> httpx.Client:
    if not options.get("url") or not options.get("project"):
        raise ValueError("redmine target needs 'url' and 'project' options")
    api_key = secret_from_env(options, "api_key_env", "the redmine target's API key", settings)
    return http_client(settings, "the redmine target", base_url=str(options["url"]).rstrip("/"),
                       timeout=REQUEST_TIMEOUT_S,
                       headers={"X-Redmine-API-Key": api_key, "Content-Type": "application/json"})


def find_issue(client: httpx.Client, options: Mapping[str, Any], key_marker: str) -> tuple[str, str] | None:
    """The issue made for this key, with its subject (which names the volume it was made at)."""
    response = client.get("/issues.json", params={"project_id": str(options["project"]), "status_id": "*",
                                                  "description": f"~{key_marker}", "sort": "id"})
    response.raise_for_status()
    issues = response.json().get("issues", [])
    return (str(issues[0]["id"]), str(issues[0]["subject"])) if issues else None


def note_once(client: httpx.Client, issue_id: str, text: str, note_marker: str) -> None:
    response = client.get(f"/issues/{issue_id}.json", params={"include": "journals"})
    response.raise_for_status()
    if any(note_marker in (journal.get("notes") or "") for journal in response.json()["issue"].get("journals", [])):
        return
    client.put(f"/issues/{issue_id}.json", json={"issue": {"notes": f"{text}\n\n{note_marker}"}}).raise_for_status()


def deliver(request: DeliveryRequest) -> DeliveryResult:
    options = request.options
    key_marker = marker(request.idempotency_key)
    with client_for(options, request.settings) as client:
        issue_id = request.existing_ref
        if issue_id is None and (found := find_issue(client, options, key_marker)) is not None:
            issue_id = found[0]
            if found[1] == request.title[:255] and request.event != "spike":
                # Made by an attempt whose answer was lost, and still current: nothing to add.
                return DeliveryResult(external_ref=issue_id, url=f"{str(options['url']).rstrip('/')}/issues/{issue_id}")
        if issue_id is None:
            if request.event == "spike":
                raise LookupError("a spike notice goes on the theme's issue, and it has none yet")
            issue: dict[str, Any] = {"project_id": str(options["project"]), "subject": request.title[:255],
                                     "description": f"{request.body}\n\n{key_marker}"}
            for option in ("tracker_id", "priority_id"):
                if options.get(option):
                    issue[option] = int(options[option])
            response = client.post("/issues.json", json={"issue": issue})
            response.raise_for_status()
            issue_id = str(response.json()["issue"]["id"])
        elif request.event == "spike":
            note_once(client, issue_id, f"{request.title}\n\n{request.body}", marker(request.idempotency_key))
        else:
            update = request.update_key or f"{request.idempotency_key}:volume-{request.theme.volume}"
            note_once(client, issue_id, f"The theme grew to {request.theme.volume} items.\n\n{request.body}",
                      marker(update))
    return DeliveryResult(external_ref=issue_id, url=f"{str(options['url']).rstrip('/')}/issues/{issue_id}")


def read_status(options: Mapping[str, Any], ref: str) -> str | None:
    # A status poll has no request to carry settings: the process's (the loop's own in a deployment) apply.
    with client_for(options) as client:
        response = client.get(f"/issues/{ref}.json")
        response.raise_for_status()
        return str(response.json()["issue"]["status"]["name"])


@hookimpl
def register_target_types(register: Callable[[TargetType], None]) -> None:
    register(TargetType(name="redmine", description="Redmine issues over the REST API (status by polling)",
                        deliver=deliver, read_status=read_status))
