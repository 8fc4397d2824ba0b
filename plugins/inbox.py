"""Built-in routing target ``inbox``: tickets kept in feedbackloop's own database.

The core stores every delivery (title, body, owner, state) in the ``deliveries`` table, so the inbox
needs no storage of its own: its ticket reference is the delivery's idempotency key, and the dashboard
shows each owner's inbox from that table.
"""

from __future__ import annotations

from collections.abc import Callable

from core import hookimpl
from core.types import DeliveryRequest, DeliveryResult, TargetType


def deliver(request: DeliveryRequest) -> DeliveryResult:
    return DeliveryResult(external_ref=request.existing_ref or f"inbox:{request.idempotency_key}")


@hookimpl
def register_target_types(register: Callable[[TargetType], None]) -> None:
    register(TargetType(name="inbox", description="Built-in inbox in the feedbackloop database",
                        deliver=deliver))
