"""Product managers' edits to themes: each is audited, and status changes reach the plugins."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import InvalidInput
from core.loop import FeedbackLoop
from core.models import AuditEntry, FeedbackItem, Theme, ThemeMembership
from core.routing.plan import ensure_owner
from core.themes.views import final_theme, theme_view
from core.types import MembershipSource, ThemeStatus


class ReviewError(InvalidInput):
    """An edit that cannot be applied; the message says why."""


def update_theme(loop: FeedbackLoop, session: Session, theme_id: int, actor: str, *, label: str | None = None,
                 status: str | None = None, owner: str | None = None) -> Theme:
    theme = session.get(Theme, theme_id)
    if theme is None:
        raise ReviewError(f"no theme with id {theme_id}", status_code=404)
    if status is not None and status not in list(ThemeStatus):
        raise ReviewError(f"status {status!r} is not one of {[str(value) for value in ThemeStatus]}")
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


def merge_themes(loop: FeedbackLoop, session: Session, theme_id: int, into_id: int, actor: str) -> Theme:
    """Merge a theme into another: its items move, and later clusterings send its successors there too."""
    source, target = session.get(Theme, theme_id), session.get(Theme, into_id)
    if source is None or target is None:
        raise ReviewError(f"no theme with id {theme_id if source is None else into_id}", status_code=404)
    target = final_theme(session, target.id)
    if source.id == target.id:
        raise ReviewError("a theme cannot be merged into itself")
    for membership in session.scalars(select(ThemeMembership).where(ThemeMembership.theme_id == source.id)):
        membership.theme_id = target.id
    for earlier in session.scalars(select(Theme).where(Theme.merged_into_id == source.id)):
        earlier.merged_into_id = target.id  # keep chains one step long
    source.merged_into_id, source.status = target.id, "merged"
    _audit(session, actor, "merge", source, {"into": target.id})
    session.flush()
    return target


def split_theme(loop: FeedbackLoop, session: Session, theme_id: int, item_ids: list[int], label: str,
                actor: str) -> Theme:
    """Split items off a theme into a new, named theme; a person placed them, so they stay there."""
    source = session.get(Theme, theme_id)
    if source is None:
        raise ReviewError(f"no theme with id {theme_id}", status_code=404)
    if not item_ids or not label.strip():
        raise ReviewError("a split needs at least one item and a label for the new theme")
    memberships = {m.item_id: m for m in session.scalars(
        select(ThemeMembership).where(ThemeMembership.item_id.in_(item_ids)))}
    outside = [item for item in item_ids if item not in memberships or memberships[item].theme_id != source.id]
    if outside:
        raise ReviewError(f"items {outside} are not in theme {theme_id}")
    new_theme = Theme(label=label.strip(), label_locked=True, status=source.status, owner_id=source.owner_id)
    session.add(new_theme)
    session.flush()
    for membership in memberships.values():
        membership.theme_id, membership.source = new_theme.id, MembershipSource.HUMAN
    _audit(session, actor, "split", source, {"new_theme": new_theme.id, "items": sorted(item_ids)})
    session.flush()
    loop.pm.hook.theme_created(theme=theme_view(session, new_theme))
    return new_theme


def move_item(loop: FeedbackLoop, session: Session, item_id: int, theme_id: int, actor: str,
              action: str = "move") -> ThemeMembership:
    """Put an item in a theme by hand (``pin`` keeps it where it is); re-clustering never moves it again."""
    item = session.get(FeedbackItem, item_id)
    theme = session.get(Theme, theme_id)
    if item is None or theme is None:
        raise ReviewError(f"no {'item' if item is None else 'theme'} with id "
                          f"{item_id if item is None else theme_id}", status_code=404)
    theme = final_theme(session, theme.id)
    membership = session.get(ThemeMembership, item_id)
    previous = membership.theme_id if membership is not None else None
    if membership is None:
        membership = ThemeMembership(item_id=item_id, theme_id=theme.id, source=MembershipSource.HUMAN)
        session.add(membership)
    membership.theme_id, membership.source = theme.id, MembershipSource.HUMAN
    _audit(session, actor, action, theme, {"item": item_id, "from": previous})
    session.flush()
    return membership

