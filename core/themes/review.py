"""Product managers' edits to themes: each is audited, and status changes reach the plugins.

An entry's details keep what the edit replaced, so ``core.themes.undo`` can put it back exactly. Item
memberships as they were before an edit are rows ``[item id, theme id, source, score]`` under
``before`` (theme, source and score are None for an item that had no theme). The checks an edit makes
before writing are functions of their own (``check_*``): ``core.themes.preview`` runs the same ones.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import InvalidInput
from core.loop import FeedbackLoop
from core.models import Area, AuditEntry, FeedbackItem, Owner, Theme, ThemeMembership
from core.routing.plan import ensure_owner
from core.themes.views import final_theme, theme_view
from core.types import MembershipSource, ThemeStatus

MembershipRow = list[int | str | float | None]  # [item id, theme id, source, score] before an edit


class ReviewError(InvalidInput):
    """An edit that cannot be applied; the message says why."""


def check_theme(session: Session, theme_id: int) -> Theme:
    theme = session.get(Theme, theme_id)
    if theme is None:
        raise ReviewError(f"no theme with id {theme_id}", status_code=404)
    return theme


def check_label(label: str) -> str:
    if not label.strip():
        raise ReviewError("label must not be empty")
    return label.strip()


def check_status(status: str) -> str:
    if status not in list(ThemeStatus):
        raise ReviewError(f"status {status!r} is not one of {[str(value) for value in ThemeStatus]}")
    return status


def check_owner(owner: str) -> str:
    if not owner.strip():
        raise ReviewError("owner must not be empty")
    return owner


def check_merge(session: Session, theme_id: int, into_id: int) -> tuple[Theme, Theme]:
    """(source, target): the target is where ``into_id`` now stands (it may itself have been merged)."""
    source, target = session.get(Theme, theme_id), session.get(Theme, into_id)
    if source is None or target is None:
        raise ReviewError(f"no theme with id {theme_id if source is None else into_id}", status_code=404)
    target = final_theme(session, target.id)
    if source.id == target.id:
        raise ReviewError("a theme cannot be merged into itself")
    return source, target


def check_split(session: Session, theme_id: int, item_ids: list[int],
                label: str) -> tuple[Theme, list[ThemeMembership], str]:
    """(source, the chosen items' memberships, the new theme's label)."""
    source = check_theme(session, theme_id)
    if not item_ids or not label.strip():
        raise ReviewError("a split needs at least one item and a label for the new theme")
    memberships = {m.item_id: m for m in session.scalars(
        select(ThemeMembership).where(ThemeMembership.item_id.in_(item_ids)))}
    outside = [item for item in item_ids if item not in memberships or memberships[item].theme_id != source.id]
    if outside:
        raise ReviewError(f"items {outside} are not in theme {theme_id}")
    return source, [memberships[item] for item in sorted(memberships)], label.strip()


def check_move(session: Session, item_ids: Iterable[int], theme_id: int) -> tuple[list[int], Theme]:
    """(the distinct item ids, the theme they go to: where ``theme_id`` now stands)."""
    wanted = sorted(set(item_ids))
    if not wanted:
        raise ReviewError("choose at least one item to move")
    found = set(session.scalars(select(FeedbackItem.id).where(FeedbackItem.id.in_(wanted))))
    missing = [item for item in wanted if item not in found]
    if missing:
        raise ReviewError(f"no item with id {missing[0]}" if len(missing) == 1 else f"no items with ids {missing}",
                          status_code=404)
    return wanted, final_theme(session, check_theme(session, theme_id).id)


def membership_rows(session: Session, item_ids: Iterable[int]) -> list[MembershipRow]:
    """Each item's membership as it is now, as the rows kept under ``before``."""
    rows: list[MembershipRow] = []
    for item_id in item_ids:
        membership = session.get(ThemeMembership, item_id)
        rows.append([item_id, None, None, None] if membership is None else
                    [item_id, membership.theme_id, membership.source, membership.score])
    return rows


def check_area(session: Session, area_id: int) -> Area:
    area = session.get(Area, area_id)
    if area is None:
        raise ReviewError(f"no area with id {area_id}", status_code=404)
    return area


def update_theme(loop: FeedbackLoop, session: Session, theme_id: int, actor: str, *, label: str | None = None,
                 status: str | None = None, owner: str | None = None, area_id: int | None = None) -> Theme:
    theme = check_theme(session, theme_id)
    if status is not None:
        check_status(status)
    if area_id is not None:
        area = check_area(session, area_id)
        _audit(session, actor, "set_area", theme, {"from": theme.area_id, "to": area.id,
                                                   "area_locked_before": bool(theme.area_locked)})
        theme.area_id, theme.area_locked = area.id, True  # a person's placement sticks through re-clustering
    if label is not None:
        new_label = check_label(label)
        _audit(session, actor, "rename", theme,
               {"from": theme.label, "to": new_label, "label_locked_before": bool(theme.label_locked)})
        theme.label, theme.label_locked = new_label, True  # a person's name sticks through re-clustering
    if owner is not None:
        check_owner(owner)
        created = session.scalar(select(Owner.id).where(Owner.name == owner)) is None
        new_owner = ensure_owner(session, owner)
        _audit(session, actor, "set_owner", theme,
               {"from": theme.owner.name if theme.owner else None, "to": new_owner.name,
                "from_owner_id": theme.owner_id, "to_owner_id": new_owner.id, "owner_created": created})
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
    source, target = check_merge(session, theme_id, into_id)
    moved = list(session.scalars(select(ThemeMembership).where(ThemeMembership.theme_id == source.id)
                                 .order_by(ThemeMembership.item_id)))
    before = membership_rows(session, [membership.item_id for membership in moved])
    for membership in moved:
        membership.theme_id = target.id
    redirected: list[list[int]] = []
    for earlier in session.scalars(select(Theme).where(Theme.merged_into_id == source.id).order_by(Theme.id)):
        redirected.append([earlier.id, source.id])
        earlier.merged_into_id = target.id  # keep chains one step long
    details: dict[str, object] = {
        "into": target.id, "source": source.id, "target": target.id,
        "items": [membership.item_id for membership in moved], "before": before,
        "status_before": source.status, "merged_into_before": source.merged_into_id, "redirected": redirected}
    source.merged_into_id, source.status = target.id, "merged"
    _audit(session, actor, "merge", source, details)
    session.flush()
    return target


def split_theme(loop: FeedbackLoop, session: Session, theme_id: int, item_ids: list[int], label: str,
                actor: str) -> Theme:
    """Split items off a theme into a new, named theme; a person placed them, so they stay there."""
    source, memberships, new_label = check_split(session, theme_id, item_ids, label)
    before = membership_rows(session, [membership.item_id for membership in memberships])
    new_theme = Theme(label=new_label, label_locked=True, status=source.status, owner_id=source.owner_id)
    session.add(new_theme)
    session.flush()
    for membership in memberships:
        membership.theme_id, membership.source = new_theme.id, MembershipSource.HUMAN
    _audit(session, actor, "split", source, {"new_theme": new_theme.id, "items": sorted(item_ids),
                                             "source": source.id, "before": before})
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
    before = membership_rows(session, [item_id])
    membership = _place(session, item_id, theme.id)
    _audit(session, actor, action, theme, {"item": item_id, "from": before[0][1], "to": theme.id, "before": before})
    session.flush()
    return membership


def move_items(loop: FeedbackLoop, session: Session, item_ids: list[int], theme_id: int,
               actor: str) -> list[ThemeMembership]:
    """Move several chosen items to a theme by hand, as one audited action (undone as one)."""
    wanted, theme = check_move(session, item_ids, theme_id)
    before = membership_rows(session, wanted)
    memberships = [_place(session, item_id, theme.id) for item_id in wanted]
    _audit(session, actor, "move_items", theme, {"items": wanted, "to": theme.id, "before": before})
    session.flush()
    return memberships


def _place(session: Session, item_id: int, theme_id: int) -> ThemeMembership:
    membership = session.get(ThemeMembership, item_id)
    if membership is None:
        membership = ThemeMembership(item_id=item_id, theme_id=theme_id, source=MembershipSource.HUMAN)
        session.add(membership)
    membership.theme_id, membership.source = theme_id, MembershipSource.HUMAN
    return membership
