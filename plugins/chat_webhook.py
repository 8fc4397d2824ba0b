"""Routing target ``chat_webhook``: a message to a Slack-compatible incoming webhook (Slack, Mattermost,
Rocket.Chat, Zulip's Slack endpoint...): ``{"text": ...}`` as JSON.

Target options: ``url``, or ``url_env`` naming an environment variable that holds it (an incoming-webhook
URL is a secret: anyone who has it can post). Chat has no way to look a message up, so a retry after a
lost answer can post twice; the text names the theme, so a reader sees it is the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from core import hookimpl
from core.secrets import secret_from_env
from core.types import DeliveryRequest, DeliveryResult, TargetType

REQUEST_TIMEOUT_S = 10.0


def webhook_url(options: Mapping[str, Any]) -> str:
    if options.get("url"):
        return str(options["url"])
    return secret_from_env(options, "url_env", "a chat_webhook target without a 'url' option")


def message(request: DeliveryRequest) -> str:
    if request.event == "spike":
        return f":rotating_light: *{request.title}*\n{request.body}"
    if request.existing_ref is not None:
        link = request.link or request.body.rsplit("\n", 1)[-1]
        return f"*{request.title}*\nThe theme grew to {request.theme.volume} items.\n{link}"
    return f"*{request.title}*\n{request.body}"


def deliver(request: DeliveryRequest) -> DeliveryResult:
    response = httpx.post(webhook_url(request.options), json={"text": message(request)}, timeout=REQUEST_TIMEOUT_S)
    response.raise_for_status()
    return DeliveryResult(external_ref=request.existing_ref or f"chat:{request.idempotency_key}")


@hookimpl
def register_target_types(register: Callable[[TargetType], None]) -> None:
    register(TargetType(name="chat_webhook", description="Slack-compatible incoming webhook (JSON text)",
                        deliver=deliver))
