"""What the intake plugins share: HMAC-SHA256 signatures and parsing of bodies, dates and options. Not a
plugin itself.

Two signature schemes. ``sha256=<hex HMAC(secret, body)>`` is what Discourse, GitHub and Jira send
(``sign``/``verify``); it signs the body only, so a captured delivery stays valid forever. The generic
webhook uses the timestamped scheme Stripe made common (``sign_timestamped``/``verify_timestamped``):
``t=<unix seconds>,v1=<hex HMAC(secret, "<t>.<body>")>``, refused once ``t`` is more than the tolerance
away from the server's clock, so a replay has minutes, not forever. Several ``v1=`` values may be sent
(one per secret while a sender rotates secrets); one matching is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from core.json_depth import nesting_depth
from core.types import WebhookRejected

# GitHub's and Discourse's payloads nest under ten levels; this leaves room and stays far from Python's limit.
MAX_JSON_DEPTH = 64

# How far (seconds, either way) a timestamped signature may be from the server's clock: long enough for
# clock skew and a sender's retries of one attempt, short enough that a captured delivery soon expires.
DEFAULT_TOLERANCE_S = 300
LEGACY_PREFIX = "sha256="


def sign(secret: str, body: bytes) -> str:
    return LEGACY_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _timestamped_mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign_timestamped(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value ``t=<unix seconds>,v1=<hex>`` for ``body``, signed now unless ``timestamp`` is given."""
    moment = int(time.time()) if timestamp is None else timestamp
    return f"t={moment},v1={_timestamped_mac(secret, moment, body)}"


def truthy(value: Any) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def _signature_header(secret: str | None, headers: Mapping[str, str], header: str,
                      options: Mapping[str, Any]) -> str | None:
    """The signature header's value; None when the channel takes unsigned deliveries (no secret, opted in)."""
    if not secret:
        if truthy(options.get("allow_unsigned", False)):
            return None
        raise WebhookRejected(401, "this channel has no secret configured; refusing unsigned deliveries")
    given = headers.get(header.lower())
    if not given:
        raise WebhookRejected(401, f"missing {header} header")
    return given


def verify(secret: str | None, body: bytes, headers: Mapping[str, str], header: str,
           options: Mapping[str, Any]) -> None:
    """Refuse (401) a delivery whose ``sha256=`` signature is missing or does not match the channel's secret."""
    given = _signature_header(secret, headers, header, options)
    if given is None or secret is None:
        return
    # Constant-time comparison: a timing difference must not reveal how much of a forgery was right.
    if not hmac.compare_digest(given.strip().encode(), sign(secret, body).encode()):
        raise WebhookRejected(401, f"wrong {header}: the body was not signed with this channel's secret")


def _tolerance(options: Mapping[str, Any]) -> float:
    value = options.get("signature_tolerance_s", DEFAULT_TOLERANCE_S)
    try:
        tolerance = float(value)
    except (TypeError, ValueError):
        tolerance = -1.0
    if not 0 < tolerance < float("inf"):  # the operator's mistake: 503 makes the sender retry later
        raise WebhookRejected(503, f"channel option signature_tolerance_s={value!r} must be a positive number")
    return tolerance


def _parse_timestamped(given: str, header: str) -> tuple[int, list[str]]:
    """``t`` and every ``v1`` of a ``t=...,v1=...`` header (other schemes are skipped, as Stripe does)."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in given.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookRejected(401, f"malformed {header}: expected 't=<unix seconds>,v1=<hex HMAC-SHA256 of "
                                   "\"<t>.<body>\">'")
    return timestamp, signatures


def verify_timestamped(secret: str | None, body: bytes, headers: Mapping[str, str], header: str,
                       options: Mapping[str, Any], now: float | None = None) -> None:
    """Refuse (401) a delivery whose ``t=...,v1=...`` signature is missing, wrong or outside the tolerance.

    The legacy ``sha256=<hex>`` form is accepted only where the channel option ``allow_legacy_signatures``
    is true: it has no timestamp, so a captured delivery can be replayed forever.
    """
    given = _signature_header(secret, headers, header, options)
    if given is None or secret is None:
        return
    if given.strip().startswith(LEGACY_PREFIX):
        if not truthy(options.get("allow_legacy_signatures", False)):
            raise WebhookRejected(401, f"{header} uses the legacy 'sha256=' form, which can be replayed; sign "
                                       "'t=<unix seconds>,v1=<hex>' (or set the channel option "
                                       "allow_legacy_signatures)")
        verify(secret, body, headers, header, options)
        return
    timestamp, signatures = _parse_timestamped(given, header)
    tolerance = _tolerance(options)
    drift = (time.time() if now is None else now) - timestamp
    if abs(drift) > tolerance:
        raise WebhookRejected(401, f"{header} was made {drift:.0f} s from this server's clock; the tolerance is "
                                   f"{tolerance:.0f} s (a replayed delivery, or a clock to set right)")
    expected = _timestamped_mac(secret, timestamp, body).encode()
    # Constant-time comparisons, every one of them: timing must not reveal how much of a forgery was right.
    matches = [hmac.compare_digest(expected, signature.encode()) for signature in signatures]
    if not any(matches):
        raise WebhookRejected(401, f"wrong {header}: the body was not signed with this channel's secret")


def parse_json(body: bytes) -> Any:
    """The body's JSON; 400 when it is not JSON or nests deeper than any sender's payload does.

    A deep enough document makes ``json`` itself raise RecursionError, and one just below that depth makes
    the code that walks it later (redaction, the JSON columns) raise it: both were a 500.
    """
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WebhookRejected(400, f"body is not valid JSON: {error}") from error
    except RecursionError:
        payload = None
    else:
        if nesting_depth(payload, MAX_JSON_DEPTH) <= MAX_JSON_DEPTH:
            return payload
    raise WebhookRejected(400, f"body nests more than {MAX_JSON_DEPTH} levels deep")


# Options of every channel type verified by ``verify`` (HMAC of the body, no time signed).
UNSIGNED_OPTION = {"allow_unsigned": "true: accept deliveries without a signature (trusted networks only)"}


def split_option(options: Mapping[str, Any], key: str) -> set[str]:
    """A comma-separated option as a set of lower-case values."""
    return {part.strip().lower() for part in str(options.get(key, "") or "").split(",") if part.strip()}


def delivery_key(delivery_id: str | None, body: bytes) -> str | None:
    """What redeliveries are recognised by: the sender's delivery id (an unsigned header) bound to the signed
    body, as a digest. A redelivery repeats both; someone replaying a captured body under made-up ids (Discourse
    numbers them in sequence) cannot use them to mark a different, real delivery as already seen, and the
    header's text itself is never stored."""
    if not delivery_id:
        return None
    return hashlib.sha256(delivery_id.encode("utf-8", "replace") + b"\n" + body).hexdigest()


def text_id(value: Any) -> str:
    """A payload's id as text (some senders send ids as strings, others as numbers); '' when absent."""
    if isinstance(value, bool) or value is None:
        return ""
    return str(value).strip() if isinstance(value, str | int) else ""


def metadata_number(value: Any) -> int | str | None:
    """An id for metadata: a number when it is one, since redaction reads long digit strings as card numbers."""
    text = text_id(value)
    return int(text) if text.isdecimal() and text.isascii() else text or None


def as_object(value: Any) -> dict[str, Any]:
    """The value when it is a JSON object, else an empty one (a payload's optional sections)."""
    return value if isinstance(value, dict) else {}
