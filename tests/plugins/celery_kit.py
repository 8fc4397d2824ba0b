"""What the Celery tests' worker processes load as an installed plugin (an entry point the tests declare):
the tests' hash embedder (no model to load) and a "ledger" target that files tickets on a local HTTP
server (tests/support/celery_cluster.py) the way real trackers are used: look the delivery's idempotency
key up, create only when it is not there."""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

from core import hookimpl
from core.types import DeliveryRequest, DeliveryResult, TargetType
from tests.support.loops import HashEmbedder


def deliver(request: DeliveryRequest) -> DeliveryResult:
    body = json.dumps({"key": request.idempotency_key, "title": request.title}).encode()
    call = urllib.request.Request(f"{request.options['url']}/tickets", data=body, method="POST",
                                  headers={"Content-Type": "application/json", "X-Worker-Pid": str(os.getpid())})
    with urllib.request.urlopen(call, timeout=120) as answer:
        ticket = json.loads(answer.read())
    return DeliveryResult(external_ref=str(ticket["ref"]))


@hookimpl
def register_embedders(register: Any) -> None:
    register("hash", lambda batch_size=64: HashEmbedder())


@hookimpl
def register_target_types(register: Any) -> None:
    register(TargetType(name="ledger", description="Tickets on the tests' ledger server", deliver=deliver))
