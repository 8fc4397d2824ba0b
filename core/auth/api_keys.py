"""API keys and what each may do: the first admin key comes from FEEDBACKLOOP_ADMIN_KEY; others are
stored hashed (SHA-256; the key itself is shown once, when it is made).

A key holds one or more scopes. Permission matrix (``/api/v1``; the webhooks, tracker webhooks,
``/healthz`` and the dashboard pages have their own checks or none, see README):

    scope   may
    ------  -----------------------------------------------------------------------------------------
    read    GET /feedback, GET /themes, GET /themes/{id}, GET /deliveries, GET /loop/reply-template,
            GET /channels/{name}/vitality, GET /themes/{id}/champions, GET /champions/invitation-template,
            GET /themes/{id}/publication
    pm      everything read may, and the product manager's work: PATCH /themes/{id},
            POST /themes/{id}/merge, /themes/{id}/split, /feedback/{id}/move, /feedback/{id}/pin,
            POST /deliveries/{id}/retry, GET /routing/dry-run, PUT /loop/reply-template,
            POST /themes/{id}/champions/{pseudonym}/invitations (and .../answer),
            PUT /champions/invitation-template, PUT and DELETE /themes/{id}/publication
    intake  POST /feedback only: to the channels the key is bound to, or to any API channel when unbound
    admin   everything above (POST /feedback to any API channel), and GET/POST/DELETE /channels,
            GET/PUT /rules, POST /rules/validate; keys themselves are made with ``feedbackloop keys``
    metrics GET /metrics only (for a Prometheus scraper: queue depths and channel names, nothing else)

``GET /rules`` is admin-only: the rules file carries ``target_options`` (chat webhook URLs, which are
credentials in themselves); product managers see who gets what, and by which rule, in the dry run.
No key, whichever its scopes, writes to a webhook channel's items through the API
(``core.intake.api_channels``). Keys from before scopes map as admin -> admin, member -> pm + intake.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit import cli_actor, key_actor, record
from core.errors import Conflict, InvalidInput, NotFound, Unauthorized
from core.intake.api_channels import API_CHANNEL
from core.models import ApiKey
from core.settings import Settings

SCOPES = ("admin", "pm", "intake", "read", "metrics")
# What holding a scope lets a caller do, as the scopes it stands in for.
GRANTS: dict[str, frozenset[str]] = {
    "admin": frozenset(SCOPES),
    "pm": frozenset({"pm", "read"}),
    "intake": frozenset({"intake"}),
    "read": frozenset({"read"}),
    "metrics": frozenset({"metrics"}),
}
LEGACY_ROLE_SCOPES = {"admin": ("admin",), "member": ("pm", "intake")}
# The name audit entries give the FEEDBACKLOOP_ADMIN_KEY; stored keys may not take it.
ADMIN_KEY_NAME = "FEEDBACKLOOP_ADMIN_KEY"
KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
AUTH_HINT = "send 'Authorization: Bearer <key>'"


@dataclass(frozen=True)
class ApiCaller:
    """Who is calling: the key's name (for audit entries), its scopes, and the channels it may write to."""

    name: str
    scopes: frozenset[str]
    channels: frozenset[str] | None = None  # None: any API channel

    @property
    def actor(self) -> str:
        return key_actor(self.name)

    def allows(self, scope: str) -> bool:
        return any(scope in GRANTS.get(held, frozenset()) for held in self.scopes)

    def writable_channels(self) -> frozenset[str] | None:
        """The channels this caller may post feedback to; None for any API channel."""
        return None if "admin" in self.scopes else self.channels


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def missing_key() -> Unauthorized:
    return Unauthorized(f"missing API key; {AUTH_HINT}", headers={"WWW-Authenticate": "Bearer"})


def wrong_key() -> Unauthorized:
    return Unauthorized(f"invalid or revoked API key; {AUTH_HINT}",
                        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def admin_key_caller(settings: Settings, key: str) -> ApiCaller | None:
    """The caller for FEEDBACKLOOP_ADMIN_KEY, when ``key`` is it (compared in constant time)."""
    if settings.admin_key and hmac.compare_digest(key.encode(), settings.admin_key.encode()):
        return ApiCaller(name=ADMIN_KEY_NAME, scopes=frozenset({"admin"}))
    return None


def caller_of(stored: ApiKey) -> ApiCaller:
    scopes = stored.scopes if stored.scopes is not None else LEGACY_ROLE_SCOPES.get(stored.role, ())
    channels = frozenset(stored.channels) if stored.channels is not None else None
    return ApiCaller(name=stored.name, scopes=frozenset(scopes), channels=channels)


def authenticate(session: Session, settings: Settings, key: str | None) -> ApiCaller:
    """The caller a presented key stands for; Unauthorized (401) when it is missing, wrong or revoked."""
    if not key:
        raise missing_key()
    admin = admin_key_caller(settings, key)
    if admin is not None:
        return admin
    stored = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked.is_(False)))
    if stored is None:
        raise wrong_key()
    return caller_of(stored)


def checked_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes in canonical order, less those another one grants (admin + pm is admin); InvalidInput for an
    unknown one or none at all."""
    given = {scope.strip().lower() for scope in scopes}
    unknown = sorted(given - set(SCOPES))
    if unknown:
        raise InvalidInput(f"unknown scope {unknown[0]!r}; scopes are {', '.join(SCOPES)}")
    if not given:
        raise InvalidInput(f"a key needs at least one scope: {', '.join(SCOPES)}")
    implied = {granted for scope in given for granted in GRANTS[scope] if granted != scope}
    return [scope for scope in SCOPES if scope in given - implied]


def checked_channels(scopes: list[str], channels: Iterable[str] | None) -> list[str] | None:
    if channels is None:
        return None
    names = sorted({name.strip() for name in channels})
    if "intake" not in scopes or "admin" in scopes:
        raise InvalidInput("channels bind an intake key; give the key the intake scope (and not admin)")
    for name in names:
        if not API_CHANNEL.match(name):
            raise InvalidInput(f"channel {name!r} must be a slug: lower-case letters, digits, '.', '-' or '_'")
    return names or None


def create_api_key(session: Session, name: str, scopes: Iterable[str], channels: Iterable[str] | None = None,
                   actor: str | None = None) -> str:
    """Store a new key and return it; only its hash is kept, so it is shown once. Audited."""
    name = name.strip()
    if not KEY_NAME.match(name) or name == ADMIN_KEY_NAME:
        raise InvalidInput(f"key name {name!r} must be 1-64 letters, digits, '.', '_', '@' or '-' "
                           f"(and not {ADMIN_KEY_NAME})")
    scope_list = checked_scopes(scopes)
    channel_list = checked_channels(scope_list, channels)
    if session.scalar(select(ApiKey.id).where(ApiKey.name == name, ApiKey.revoked.is_(False))) is not None:
        raise Conflict(f"a key named {name!r} exists; revoke it first or choose another name")
    key = "fbl_" + secrets.token_urlsafe(32)
    # role: the column code from before scopes read (after a downgrade); kept at the nearest old value.
    role = "admin" if "admin" in scope_list else "member"
    row = ApiKey(name=name, key_hash=hash_key(key), role=role, scopes=scope_list, channels=channel_list)
    session.add(row)
    session.flush()
    record(session, actor or cli_actor(), "create_key", "api_key", row.id,
           {"name": name, "scopes": scope_list, "channels": channel_list})
    return key


def list_api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.name, ApiKey.id)))


def revoke_api_key(session: Session, name: str, actor: str | None = None) -> int:
    """Revoke the active key of that name (at once: the next request with it gets 401). Audited."""
    rows = list(session.scalars(select(ApiKey).where(ApiKey.name == name, ApiKey.revoked.is_(False))))
    if not rows:
        raise NotFound(f"no active key named {name!r}")
    for row in rows:
        row.revoked = True
        record(session, actor or cli_actor(), "revoke_key", "api_key", row.id, {"name": row.name})
    session.flush()
    return len(rows)
