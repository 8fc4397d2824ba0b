"""A throwaway third-party-style plugin: a "throwaway" chat channel and a "memo" target.

It lives outside ``core/`` and ``plugins/`` to show that a plugin needs nothing but the public hooks
and types.
"""

from __future__ import annotations

import json
from typing import Any

from core import hookimpl
from core.types import (
    ChannelType,
    DeliveryRequest,
    DeliveryResult,
    IntakeResult,
    ItemDraft,
    TargetType,
    WebhookRequest,
)

SENT: list[DeliveryRequest] = []


def handle_webhook(request: WebhookRequest) -> IntakeResult:
    payload = json.loads(request.body)
    if payload.get("event") == "noise":
        return IntakeResult(ignored="noise event")
    return IntakeResult(items=[ItemDraft(text=message["body"], channel=request.channel_name,
                                         external_id=str(message["id"]))
                               for message in payload["messages"]])


def deliver(request: DeliveryRequest) -> DeliveryResult:
    SENT.append(request)
    return DeliveryResult(external_ref=f"memo-{len(SENT)}")


@hookimpl
def register_channel_types(register: Any) -> None:
    register(ChannelType(name="throwaway", description="Throwaway chat messages", handle_webhook=handle_webhook))


@hookimpl
def register_target_types(register: Any) -> None:
    register(TargetType(name="memo", description="Memos kept in a list", deliver=deliver))
