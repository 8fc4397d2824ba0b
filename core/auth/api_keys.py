"""API keys: the first admin key comes from FEEDBACKLOOP_ADMIN_KEY; others are stored hashed."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import ApiKey
from core.settings import Settings


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, name: str, role: str = "admin") -> str:
    """Store a new key and return it; only its hash is kept, so it is shown once."""
    key = "fbl_" + secrets.token_urlsafe(32)
    session.add(ApiKey(name=name, key_hash=hash_key(key), role=role))
    session.flush()
    return key


def role_for_key(session: Session, settings: Settings, key: str | None) -> str | None:
    """The role of a presented key, or None when it is missing, wrong or revoked."""
    if not key:
        return None
    if settings.admin_key and hmac.compare_digest(key.encode(), settings.admin_key.encode()):
        return "admin"
    stored = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked.is_(False)))
    return stored.role if stored is not None else None
