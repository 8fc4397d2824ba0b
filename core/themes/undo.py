"""Undoing a person's edit to a theme from the history: the change is reversed and a new "undo" entry says
who undid it; the original entry keeps its actor and points at the undo (``undone_by_id``).

What can be undone: ``rename``, ``set_status``, ``set_owner``, ``set_area``, ``merge``, ``split``, ``move``, ``pin`` and
``move_items`` entries written with what undoing needs (``core.themes.review``). Nothing else: an undo is
not undone (make the change again instead), and an entry is undone once.

An undo never overwrites a later change. It is refused (``Conflict``, saying what to undo first) when:

- rename, status, owner, area: the theme's name, status, owner or area is no longer what the entry set (a later edit,
  a tracker's status, or the clustering changed it). Only the value counts: an entry whose value is back
  in place (changed and changed back) can be undone.
- merge: the merged theme no longer points at its target, the target has itself been merged since, or a
  theme redirected by the merge was redirected again.
- split: the new theme has been merged, or had themes merged into it, or the theme split from has been
  merged since.
- merge, split, move: a person has placed any of the items since (moved or pinned them; every person's
  placement is a human membership). Items the clustering re-placed since, and items erased since, are left
  where they are; the rest go back exactly (theme, source and score). Items the clustering let follow a
  split go back with the others, as the clustering's.
- move: a theme an item goes back to has been merged since (undo that merge first).

Undoing a split removes the new theme, or archives it when something else refers to it (a ticket, an
alert, a reply, a suggestion decision, or another audit entry about it). Undoing an owner change removes the
owner that change created, when nothing refers to it any more. A status put back reaches the plugins
(``theme_status_changed``) like any status change; replies already sent when a theme was closed stay sent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from core.audit import record
from core.db import Base
from core.errors import Conflict, NotFound
from core.loop import FeedbackLoop
from core.models import AuditEntry, Owner, Theme, ThemeMembership
from core.themes.preview import Preview, agree, counted, items_that, quoted
from core.themes.views import theme_view
from core.types import MembershipSource, ThemeStatus

# The details each undoable action needs (entries written before undo existed lack some of them).
REQUIRED_DETAILS = {
    "rename": ("from", "to", "label_locked_before"),
    "set_status": ("from", "to"),
    "set_owner": ("from_owner_id", "to_owner_id", "owner_created"),
    "set_area": ("from", "to", "area_locked_before"),
    "merge": ("source", "target", "before", "status_before", "merged_into_before", "redirected"),
    "split": ("source", "new_theme", "before"),
    "move": ("to", "before"),
    "pin": ("to", "before"),
    "move_items": ("to", "before"),
}


@dataclass
class _Plan:
    """An undo checked against the database as it is now: what it will do, and the function doing it."""

    lines: list[str]
    apply: Callable[[FeedbackLoop], dict[str, object]]


def preview_undo(session: Session, audit_id: int) -> Preview:
    """What undoing entry ``audit_id`` would change; raises as ``undo`` would, writes nothing."""
    entry = _undoable_entry(session, audit_id, lock=False)
    return Preview("undo", _title(entry), _plan(session, entry).lines)


def undo(loop: FeedbackLoop, session: Session, audit_id: int, actor: str) -> AuditEntry:
    """Reverse the change entry ``audit_id`` recorded; returns the new "undo" entry (in ``session``)."""
    entry = _undoable_entry(session, audit_id, lock=True)
    plan = _plan(session, entry)
    details: dict[str, object] = {"undoes": entry.id, "action": entry.action, "changes": plan.lines}
    undo_entry = record(session, actor, "undo", entry.entity_type, entry.entity_id, details)
    session.flush()
    # Claimed before anything changes (conditionally, so two people undoing one entry at once cannot both
    # succeed), and so before plugins hear of a status put back.
    marked = cast(CursorResult[Any], session.execute(
        update(AuditEntry).where(AuditEntry.id == entry.id).where(AuditEntry.undone_by_id.is_(None))
        .values(undone_by_id=undo_entry.id).execution_options(synchronize_session="fetch")))
    if marked.rowcount != 1:
        raise Conflict(f"entry #{entry.id} was undone by someone else just now")
    undo_entry.details = {**details, **plan.apply(loop)}
    session.flush()
    return undo_entry


def _title(entry: AuditEntry) -> str:
    return f"Undo {entry.action.replace('_', ' ')} #{entry.id} by {entry.actor}"


def _undoable_entry(session: Session, audit_id: int, lock: bool) -> AuditEntry:
    entry = session.get(AuditEntry, audit_id, with_for_update=lock)
    if entry is None:
        raise NotFound(f"no audit entry with id {audit_id}")
    if entry.action == "undo":
        raise Conflict("an undo cannot itself be undone; make the change again instead")
    if entry.action not in REQUIRED_DETAILS or entry.entity_type != "theme":
        raise Conflict(f"{quoted(entry.action)} entries cannot be undone")
    if entry.undone_by_id is not None:
        raise Conflict(f"entry #{entry.id} was already undone (by entry #{entry.undone_by_id})")
    missing = [key for key in REQUIRED_DETAILS[entry.action] if key not in (entry.details or {})]
    if missing:
        raise Conflict(f"entry #{entry.id} was recorded before changes could be undone; it lacks {missing}")
    return entry


def _plan(session: Session, entry: AuditEntry) -> _Plan:
    planners: dict[str, Callable[[Session, AuditEntry], _Plan]] = {
        "rename": _rename, "set_status": _set_status, "set_owner": _set_owner, "set_area": _set_area,
        "merge": _merge, "split": _split, "move": _move, "pin": _move, "move_items": _move}
    return planners[entry.action](session, entry)


def _theme(session: Session, theme_id: object, role: str = "the theme") -> Theme:
    theme = session.get(Theme, int(cast(int, theme_id)))
    if theme is None:
        raise Conflict(f"{role} (#{theme_id}) no longer exists")
    return theme


def _merged_into(session: Session, theme: Theme) -> str:
    merged = session.get(Theme, theme.merged_into_id) if theme.merged_into_id is not None else None
    return quoted(merged.label) if merged is not None else f"theme #{theme.merged_into_id}"


def _rename(session: Session, entry: AuditEntry) -> _Plan:
    details = entry.details
    theme = _theme(session, entry.entity_id)
    if theme.label != details["to"]:
        raise Conflict(f"the theme is called {quoted(theme.label)} now, not {quoted(details['to'])} as this "
                       "entry left it; undo the later rename first")

    def apply(_loop: FeedbackLoop) -> dict[str, object]:
        theme.label, theme.label_locked = details["from"], bool(details["label_locked_before"])
        return {}

    lines = [f"{quoted(theme.label)} gets its name {quoted(details['from'])} back"]
    if not details["label_locked_before"]:
        lines.append("The clustering names it again at the next re-clustering")
    return _Plan(lines, apply)


def _set_area(session: Session, entry: AuditEntry) -> _Plan:
    details = entry.details
    theme = _theme(session, entry.entity_id)
    if theme.area_id != details["to"]:
        raise Conflict(f"{quoted(theme.label)} is in area #{theme.area_id} now, not #{details['to']} as this "
                       "entry left it; undo the later move first")

    def apply(_loop: FeedbackLoop) -> dict[str, object]:
        theme.area_id, theme.area_locked = details["from"], bool(details["area_locked_before"])
        return {}

    back = f"area #{details['from']}" if details["from"] is not None else "no area"
    return _Plan([f"{quoted(theme.label)} goes back to {back}"], apply)


def _set_status(session: Session, entry: AuditEntry) -> _Plan:
    details = entry.details
    theme = _theme(session, entry.entity_id)
    if theme.status != details["to"]:
        raise Conflict(f"the status of {quoted(theme.label)} is {quoted(theme.status)} now, not "
                       f"{quoted(details['to'])} as this entry left it; undo the later change first")

    def apply(loop: FeedbackLoop) -> dict[str, object]:
        old_status, theme.status = theme.status, details["from"]
        session.flush()
        loop.pm.hook.theme_status_changed(theme=theme_view(session, theme), old_status=old_status,
                                          new_status=theme.status)
        return {}

    return _Plan([f"The status of {quoted(theme.label)} goes back from {quoted(details['to'])} to "
                  f"{quoted(details['from'])}"], apply)


def _set_owner(session: Session, entry: AuditEntry) -> _Plan:
    details = entry.details
    theme = _theme(session, entry.entity_id)
    if theme.owner_id != details["to_owner_id"]:
        raise Conflict(f"{quoted(theme.label)} has another owner now than this entry gave it; undo the later "
                       "change first")
    new_owner = session.get(Owner, details["to_owner_id"])
    previous = session.get(Owner, details["from_owner_id"]) if details["from_owner_id"] is not None else None
    if details["from_owner_id"] is not None and previous is None:
        raise Conflict(f"the previous owner (#{details['from_owner_id']}) no longer exists")
    # The owner this change made goes too, unless something else (a rule, a ticket, a person) uses it by now.
    drop_owner = bool(details["owner_created"]) and new_owner is not None and _referrers(session, new_owner) == 1

    def apply(_loop: FeedbackLoop) -> dict[str, object]:
        theme.owner_id = details["from_owner_id"]
        session.flush()
        session.expire(theme, ["owner"])
        if drop_owner and new_owner is not None and _referrers(session, new_owner) == 0:
            session.delete(new_owner)
            return {"owner_removed": new_owner.name}
        return {}

    lines = [f"The owner of {quoted(theme.label)} goes back from {quoted(new_owner.name if new_owner else None)} "
             f"to {quoted(previous.name if previous else None)}"]
    if drop_owner and new_owner is not None:
        lines.append(f"The owner {quoted(new_owner.name)}, made by this change, is removed")
    return _Plan(lines, apply)


def _merge(session: Session, entry: AuditEntry) -> _Plan:
    details = entry.details
    source = _theme(session, details["source"], "the merged theme")
    target = _theme(session, details["target"], "the theme it was merged into")
    if target.merged_into_id is not None:  # that merge pointed this one's theme on too: it goes first
        raise Conflict(f"{quoted(target.label)} has since been merged into {_merged_into(session, target)}; undo "
                       "that merge first")
    if source.merged_into_id != target.id or source.status != ThemeStatus.MERGED:
        raise Conflict(f"{quoted(source.label)} is no longer merged into {quoted(target.label)}")
    redirected = [(_theme(session, theme_id, "a redirected theme"), int(was)) for theme_id, was in
                  details["redirected"]]
    moved_on = [theme.id for theme, _was in redirected if theme.merged_into_id != target.id]
    if moved_on:
        raise Conflict(f"themes {moved_on}, merged into {quoted(source.label)} before, point elsewhere now")
    restorable, skipped = _restorable(session, details["before"], target.id, left_by_person=False)

    def apply(_loop: FeedbackLoop) -> dict[str, object]:
        _put_back(session, restorable)
        for theme, was in redirected:
            theme.merged_into_id = was
        source.merged_into_id, source.status = details["merged_into_before"], details["status_before"]
        return {"restored_items": len(restorable)}

    lines = [f"{items_that(len(restorable), 'moves', 'move')} back from {quoted(target.label)} to "
             f"{quoted(source.label)}",
             f"{quoted(source.label)} is no longer merged; its status goes back to "
             f"{quoted(details['status_before'])}"]
    if redirected:
        lines.append(f"{counted(len(redirected), 'theme')} merged into {quoted(source.label)} before "
                     f"{agree(len(redirected), 'points', 'point')} to it again")
    if skipped:
        lines.append(f"{counted(skipped, 'item')} the clustering has placed elsewhere since, or erased, "
                     f"{agree(skipped, 'stays where it is', 'stay where they are')}")
    return _Plan(lines, apply)


def _split(session: Session, entry: AuditEntry) -> _Plan:
    details = entry.details
    source = _theme(session, details["source"], "the theme split from")
    new_theme = _theme(session, details["new_theme"], "the theme this split made")
    if new_theme.merged_into_id is not None:
        raise Conflict(f"{quoted(new_theme.label)} has since been merged into {_merged_into(session, new_theme)}; "
                       "undo that merge first")
    merged_in = list(session.scalars(select(Theme.id).where(Theme.merged_into_id == new_theme.id)))
    if merged_in:
        raise Conflict(f"themes {merged_in} have since been merged into {quoted(new_theme.label)}; undo those "
                       "merges first")
    if source.merged_into_id is not None:
        raise Conflict(f"{quoted(source.label)} has since been merged into {_merged_into(session, source)}; undo "
                       "that merge first")
    restorable, skipped = _restorable(session, details["before"], new_theme.id, left_by_person=True)
    split_items = {int(row[0]) for row in details["before"]}
    others = [membership for membership in session.scalars(
        select(ThemeMembership).where(ThemeMembership.theme_id == new_theme.id)) if membership.item_id not in
        split_items]
    placed = sorted(membership.item_id for membership in others if membership.source == MembershipSource.HUMAN)
    if placed:
        raise Conflict(f"a person has put items {placed} in {quoted(new_theme.label)} since; move them out "
                       "or undo that first")

    def apply(_loop: FeedbackLoop) -> dict[str, object]:
        _put_back(session, restorable)
        for follower in others:  # the clustering's followers: back where the clustering found them
            follower.theme_id = source.id
        session.flush()
        if _referrers(session, new_theme) == 0 and not _audited(session, new_theme):
            session.delete(new_theme)
            return {"new_theme": "removed", "restored_items": len(restorable)}
        new_theme.status = ThemeStatus.ARCHIVED
        return {"new_theme": "archived", "restored_items": len(restorable)}

    lines = [f"{items_that(len(restorable), 'goes', 'go')} back from {quoted(new_theme.label)} to "
             f"{quoted(source.label)}"]
    if others:
        lines.append(f"{counted(len(others), 'item')} the clustering added to {quoted(new_theme.label)} since "
                     f"{agree(len(others), 'goes', 'go')} to {quoted(source.label)} too")
    if skipped:
        lines.append(f"{counted(skipped, 'item')} erased or unthemed since "
                     f"{agree(skipped, 'stays where it is', 'stay where they are')}")
    lines.append(f"{quoted(new_theme.label)} is removed, or archived if tickets or history refer to it")
    return _Plan(lines, apply)


def _move(session: Session, entry: AuditEntry) -> _Plan:
    details = entry.details
    target = _theme(session, details["to"], "the theme the items went to")
    restorable, skipped = _restorable(session, details["before"], target.id, left_by_person=True)
    back_to: Counter[int | None] = Counter()
    for _membership, row in restorable:
        if row[1] is not None:
            origin = _theme(session, row[1], f"the theme item {row[0]} came from")
            if origin.merged_into_id is not None:
                raise Conflict(f"{quoted(origin.label)}, where item {row[0]} was, has since been merged into theme "
                               f"{_merged_into(session, origin)}; undo that merge first")
        back_to[row[1]] += 1

    def apply(_loop: FeedbackLoop) -> dict[str, object]:
        _put_back(session, restorable)
        return {"restored_items": len(restorable)}

    lines = []
    for origin_id, count in sorted(back_to.items(), key=lambda pair: (pair[0] is None, pair[0] or 0)):
        if origin_id is None:
            lines.append(f"{counted(count, 'item')} in {quoted(target.label)} {agree(count, 'goes', 'go')} back to "
                         "having no theme")
        elif origin_id == target.id:
            lines.append(f"{counted(count, 'item')} in {quoted(target.label)} "
                         f"{agree(count, 'is no longer pinned', 'are no longer pinned')}: the clustering may move "
                         f"{agree(count, 'it', 'them')} again")
        else:
            origin = _theme(session, origin_id)
            lines.append(f"{items_that(count, 'goes', 'go')} back from {quoted(target.label)} "
                         f"to {quoted(origin.label)}")
    if skipped:
        lines.append(f"{counted(skipped, 'item')} erased since "
                     f"{agree(skipped, 'stays where it is', 'stay where they are')}")
    return _Plan(lines, apply)


Restorable = list[tuple[ThemeMembership, list[Any]]]


def _restorable(session: Session, before: list[list[Any]], left_in: int,
                left_by_person: bool) -> tuple[Restorable, int]:
    """(memberships still where the entry left them, with their rows; how many items are gone or were
    re-placed by the clustering). Raises when a person has placed any of them since."""
    restorable: Restorable = []
    skipped = 0
    placed: list[int] = []
    for row in before:
        membership = session.get(ThemeMembership, int(row[0]))
        left_as = MembershipSource.HUMAN if left_by_person else row[2]
        if membership is not None and membership.theme_id == left_in and membership.source == left_as:
            restorable.append((membership, row))
        elif membership is not None and membership.source == MembershipSource.HUMAN:
            placed.append(membership.item_id)
        else:
            skipped += 1
    if placed:
        shown = ", ".join(str(item) for item in placed[:10]) + (" …" if len(placed) > 10 else "")
        raise Conflict(f"a person has placed {counted(len(placed), 'item')} since this change (item {shown}); "
                       "undo those changes first")
    return restorable, skipped


def _put_back(session: Session, restorable: Restorable) -> None:
    for membership, (_item_id, theme_id, source, score) in restorable:
        if theme_id is None:
            session.delete(membership)
        else:
            membership.theme_id, membership.source, membership.score = int(theme_id), source, score


def _referrers(session: Session, row: Base) -> int:
    """How many rows of any table refer to ``row`` by a foreign key (found from the schema, so tables added
    later count too)."""
    target_table = type(row).__table__
    total = 0
    for table in Base.metadata.tables.values():
        for foreign_key in table.foreign_keys:
            if foreign_key.column.table is target_table:
                row_id = getattr(row, foreign_key.column.key)
                total += int(session.scalar(select(func.count()).select_from(table)
                                            .where(foreign_key.parent == row_id)) or 0)
    return total


def _audited(session: Session, theme: Theme) -> bool:
    """Whether any audit entry is about ``theme`` (its history would point at nothing if it went)."""
    return session.scalar(select(AuditEntry.id).where(AuditEntry.entity_type == "theme")
                          .where(AuditEntry.entity_id == str(theme.id)).limit(1)) is not None

