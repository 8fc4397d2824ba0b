"""Product managers' edits to themes: each is audited, and status changes reach the plugins."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.loop import FeedbackLoop
from core.models import AuditEntry, Theme
from core.routing import ensure_owner
from core.themes import theme_view

THEME_STATUSES = ("new", "triaged", "planned", "in_progress", "done", "declined", "ignored", "archived")


class ReviewError(ValueError):
    """An edit that cannot be applied; ``status_code`` is the API's answer."""

    def __init__(self, message: str, status_code: int = 422) -> None:
        super().__init__(message)
        self.status_code = status_code


def update_theme(loop: FeedbackLoop, session: Session, theme_id: int, actor: str, *, label: str | None = None,
                 status: str | None = None, owner: str | None = None) -> Theme:
    theme = session.get(Theme, theme_id)
    if theme is None:
        raise ReviewError(f"no theme with id {theme_id}", status_code=404)
    if status is not None and status not in THEME_STATUSES:
        raise ReviewError(f"status {status!r} is not one of {list(THEME_STATUSES)}")
    if label is not None:
        if not label.strip():
            raise ReviewError("label must not be empty")
        _audit(session, actor, "rename", theme, {"from": theme.label, "to": label.strip()})
        theme.label, theme.label_locked = label.strip(), True  # a person's name sticks through re-clustering
    if owner is not None:
        new_owner = ensure_owner(session, owner)
        _audit(session, actor, "set_owner", theme,
               {"from": theme.owner.name if theme.owner else None, "to": new_owner.name})
        theme.owner_id = new_owner.id
        session.flush()
        session.refresh(theme)
    if status is not None and status != theme.status:
        old_status = theme.status
        theme.status = status
        _audit(session, actor, "set_status", theme, {"from": old_status, "to": status})
        session.flush()
        loop.pm.hook.theme_status_changed(theme=theme_view(session, theme), old_status=old_status,
                                          new_status=status)
    return theme


def _audit(session: Session, actor: str, action: str, theme: Theme, details: dict[str, object]) -> None:
    session.add(AuditEntry(actor=actor, action=action, entity_type="theme", entity_id=str(theme.id),
                           details=details))
