"""Helpers for the intake tests: captured payloads, signing, and counting what was stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from core.loop import FeedbackLoop
from core.models import FeedbackItem
from plugins.webhook_signing import sign, sign_timestamped
from tests.support.env import IN_CI, SHARED

GITHUB_DATA = Path(__file__).resolve().parents[1] / "data" / "github"
# Not redistributable (see its SOURCE.md): read from the shared folder next to the checkout.
DISCOURSE_DATA = SHARED / "data" / "webhooks" / "discourse"
DISCOURSE_SECRET = "discourse-test-secret-0123"
GITHUB_SECRET = "github-test-secret-4567"


def discourse_capture(name: str) -> dict[str, Any]:
    path = DISCOURSE_DATA / name
    if not path.exists():
        if IN_CI:
            pytest.fail(f"{path} is required with CI=true (the Discourse captures are read from ../shared)")
        pytest.skip(f"{path} not present (runs, never skips, with CI=true)")
    capture: dict[str, Any] = json.loads(path.read_text())
    return capture


def github_payload(name: str) -> bytes:
    return (GITHUB_DATA / name).read_bytes()


def discourse_delivery(capture: dict[str, Any], secret: str = DISCOURSE_SECRET,
                       body_changes: dict[str, Any] | None = None) -> tuple[bytes, dict[str, str]]:
    """The captured delivery re-serialised and signed with our test secret (the original secret is unknown)."""
    body = json.loads(json.dumps(capture["body"]))
    if body_changes:
        next(iter(body.values())).update(body_changes)
    raw = json.dumps(body).encode()
    headers = {k: v for k, v in capture["headers"].items() if k != "X-Discourse-Event-Signature"}
    headers["X-Discourse-Event-Signature"] = sign(secret, raw)
    headers["Content-Type"] = "application/json"
    return raw, headers


def github_delivery(event: str, body: bytes, delivery: str, secret: str = GITHUB_SECRET) -> dict[str, str]:
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sign(secret, body),
            "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/test"}


def webhook_headers(secret: str, body: bytes, delivery: str | None = None,
                    timestamp: int | None = None) -> dict[str, str]:
    """Headers of a generic-webhook delivery: the timestamped signature (now, unless ``timestamp``)."""
    headers = {"X-Feedbackloop-Signature": sign_timestamped(secret, body, timestamp),
               "Content-Type": "application/json"}
    if delivery is not None:
        headers["X-Feedbackloop-Delivery"] = delivery
    return headers


def count_items(loop: FeedbackLoop) -> int:
    with loop.session() as session:
        return int(session.scalar(select(func.count()).select_from(FeedbackItem)) or 0)


def items(loop: FeedbackLoop) -> list[FeedbackItem]:
    with loop.session() as session:
        return list(session.scalars(select(FeedbackItem).order_by(FeedbackItem.id)))
