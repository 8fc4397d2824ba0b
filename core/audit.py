"""The audit log's one writer: who changed what, in the caller's transaction.

Actors are strings that name a person or a credential: ``key:<api key name>`` for API calls,
``cli:<os user>`` for the command line, ``router`` / ``tracker:<type>`` for the system itself.
An entry is added to the session of the change it records, so both commit or neither does.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping

from sqlalchemy.orm import Session

from core.models import AuditEntry

MAX_ACTOR_CHARS = 128  # AuditEntry.actor's column width


def record(session: Session, actor: str, action: str, entity_type: str, entity_id: object,
           details: Mapping[str, object] | None = None) -> AuditEntry:
    """Add one audit entry for a change made in ``session``."""
    entry = AuditEntry(actor=actor[:MAX_ACTOR_CHARS], action=action, entity_type=entity_type,
                       entity_id=str(entity_id)[:64], details=dict(details or {}))
    session.add(entry)
    return entry


def cli_actor() -> str:
    """The actor for a command run by hand: the operating-system user running it."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in containers without a passwd entry
        user = "unknown"
    return f"cli:{user}"


def key_actor(key_name: str) -> str:
    """The actor for an API call: the name of the key that made it."""
    return f"key:{key_name}"


def user_actor(email: str) -> str:
    """The actor for a change made in the workspace: the signed-in person's address."""
    return f"user:{email}"
