"""What the intake plugins share: HMAC-SHA256 signatures (``sha256=<hex>``) and parsing of bodies, dates and
options. Not a plugin itself."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from core.types import WebhookRejected


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def truthy(value: Any) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def verify(secret: str | None, body: bytes, headers: Mapping[str, str], header: str,
           options: Mapping[str, Any]) -> None:
    """Refuse (401) a delivery whose signature header is missing or does not match the channel's secret."""
    if not secret:
        if truthy(options.get("allow_unsigned", False)):
            return
        raise WebhookRejected(401, "this channel has no secret configured; refusing unsigned deliveries")
    given = headers.get(header.lower())
    if not given:
        raise WebhookRejected(401, f"missing {header} header")
    # Constant-time comparison: a timing difference must not reveal how much of a forgery was right.
    if not hmac.compare_digest(given.strip().encode(), sign(secret, body).encode()):
        raise WebhookRejected(401, f"wrong {header}: the body was not signed with this channel's secret")


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WebhookRejected(400, f"body is not valid JSON: {error}") from error


def split_option(options: Mapping[str, Any], key: str) -> set[str]:
    """A comma-separated option as a set of lower-case values."""
    return {part.strip().lower() for part in str(options.get(key, "") or "").split(",") if part.strip()}
