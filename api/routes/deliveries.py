"""Deliveries (tickets on their way to targets): list them, see failures, retry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import PmKey, ReadKey, SessionDep
from api.errors import API_ERRORS, error_responses
from api.inputs import DeliveryIdPath, UtcDatetime
from core.models import Delivery
from core.routing.outbox import list_deliveries, retry_delivery

router = APIRouter(prefix="/api/v1", tags=["deliveries"], responses=error_responses(*API_ERRORS))


class DeliveryPublic(BaseModel):
    id: int
    theme_id: int
    owner: str | None
    target_type: str
    state: str
    attempts: int
    external_ref: str | None
    url: str | None
    external_status: str | None
    next_attempt_at: UtcDatetime | None
    last_error: str | None


def public_delivery(delivery: Delivery) -> DeliveryPublic:
    return DeliveryPublic(id=delivery.id, theme_id=delivery.theme_id,
                          owner=delivery.owner.name if delivery.owner else None, target_type=delivery.target_type,
                          state=delivery.state, attempts=delivery.attempts, external_ref=delivery.external_ref,
                          url=delivery.url, external_status=delivery.external_status,
                          next_attempt_at=delivery.next_attempt_at, last_error=delivery.last_error)


@router.get("/deliveries", operation_id="list_deliveries")
def get_deliveries(session: SessionDep, _caller: ReadKey, state: str | None = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[DeliveryPublic]:
    """Deliveries, optionally only one state: pending, sent, failed (retrying) or dead (gave up)."""
    return [public_delivery(delivery) for delivery in list_deliveries(session, state, limit)]


@router.post("/deliveries/{delivery_id}/retry", operation_id="retry_delivery",
             responses=error_responses(404, 409, 503))
def post_retry(delivery_id: DeliveryIdPath, session: SessionDep, caller: PmKey) -> DeliveryPublic:
    """Make a failed or dead delivery due now; the worker's next round sends it."""
    return public_delivery(retry_delivery(session, delivery_id, actor=caller.actor))
