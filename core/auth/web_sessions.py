"""Server-side sessions of the workspace: the browser holds a random token, the database its SHA-256.

A session ends when it is revoked (sign-out, an admin, a password reset), when it has been idle longer
than ``session_idle_minutes`` or is older than ``session_max_hours``, or when its user is deactivated.
Each session has its own CSRF token, sent back in every form (api/pages/common.py checks it).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.clock import aware, utcnow
from core.models import User, WebSession

DEFAULT_IDLE = timedelta(hours=8)
DEFAULT_LIFETIME = timedelta(days=7)
# last_seen_at is written at most this often, so reading pages does not turn into a write per request.
TOUCH_EVERY = timedelta(minutes=1)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user: User, user_agent: str = "",
                  lifetime: timedelta = DEFAULT_LIFETIME) -> str:
    """A new session for ``user``; returns the token for the cookie (only its hash is kept)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(WebSession(token_hash=token_hash(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32),
                           created_at=now, last_seen_at=now, expires_at=now + lifetime,
                           user_agent=user_agent[:256]))
    session.flush()
    return token


def resolve_session(session: Session, token: str | None, idle: timedelta = DEFAULT_IDLE,
                    now: datetime | None = None) -> WebSession | None:
    """The live session behind a cookie's token, or None (unknown, revoked, expired, idle, user inactive)."""
    if not token or len(token) > 256:
        return None
    found = session.scalar(select(WebSession).where(WebSession.token_hash == token_hash(token)))
    if found is None or found.revoked_at is not None:
        return None
    moment = now or utcnow()
    expires, seen = aware(found.expires_at), aware(found.last_seen_at)
    assert expires is not None and seen is not None
    if moment >= expires or moment - seen > idle or not found.user.active:
        return None
    if moment - seen > TOUCH_EVERY:
        found.last_seen_at = moment
    return found


def revoke_session(session: Session, token: str) -> bool:
    result = session.execute(update(WebSession).where(WebSession.token_hash == token_hash(token),
                                                      WebSession.revoked_at.is_(None))
                             .values(revoked_at=utcnow()))
    return bool(getattr(result, "rowcount", 0))


def revoke_user_sessions(session: Session, user_id: int) -> int:
    """End every session of a user (a password reset, a deactivation, "sign out everywhere")."""
    result = session.execute(update(WebSession).where(WebSession.user_id == user_id,
                                                      WebSession.revoked_at.is_(None))
                             .values(revoked_at=utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


def live_sessions(session: Session, user_id: int) -> list[WebSession]:
    return list(session.scalars(select(WebSession).where(WebSession.user_id == user_id,
                                                         WebSession.revoked_at.is_(None))
                                .order_by(WebSession.last_seen_at.desc())))
