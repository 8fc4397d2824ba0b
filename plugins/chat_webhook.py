"""Routing target ``chat_webhook``: a message to a Slack-compatible incoming webhook (Slack, Mattermost,
Rocket.Chat, Zulip's Slack endpoint...): ``{"text": ...}`` as JSON.

Target options: ``url``, or ``url_env`` naming an environment variable that holds it (an incoming-webhook
URL is a secret: anyone who has it can post); either obeys the outbound policy (``core.outbound``). Chat
has no way to look a message up, so a retry after a lost answer can post twice; the text names the theme,
so a reader sees it is the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from core import hookimpl
from core.outbound import http_client
from core.secrets import secret_from_env
from core.types import DeliveryRequest, DeliveryResult, TargetType

if TYPE_CHECKING:
    from core.settings import Settings

REQUEST_TIMEOUT_S = 10.0


def webhook_url(options: Mapping[str, Any], settings: Settings | None = None) -> str:
    if options.get("url"):
        return str(options["url"])
    return secret_from_env(options, "url_env", "a chat_webhook target without a 'url' option", settings)


def message(request: DeliveryRequest) -> str:
    if request.event == "spike":
        return f":rotating_light: *{request.title}*\n{request.body}"
    if request.existing_ref is not None:
        link = request.link or request.body.rsplit("\n", 1)[-1]
        return f"*{request.title}*\nThe theme grew to {request.theme.volume} items.\n{link}"
    return f"*{request.title}*\n{request.body}"


def deliver(request: DeliveryRequest) -> DeliveryResult:
    with http_client(request.settings, "the chat_webhook target", timeout=REQUEST_TIMEOUT_S) as client:
        response = client.post(webhook_url(request.options, request.settings), json={"text": message(request)})
    response.raise_for_status()
    return DeliveryResult(external_ref=request.existing_ref or f"chat:{request.idempotency_key}")


@hookimpl
def register_target_types(register: Callable[[TargetType], None]) -> None:
    register(TargetType(name="chat_webhook", description="Slack-compatible incoming webhook (JSON text)",
                        deliver=deliver))
