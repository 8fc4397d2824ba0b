"""What a person's action on a theme will change, told before it is applied; nothing is written.

``preview`` runs the checks the action itself runs (``core.themes.review.check_*``), so a preview that
answers is an action that will be accepted, and one that raises gives the action's own message. Actions
and their parameters:

- ``rename``: ``label``
- ``set_status``: ``status``; ``ignore``: none (the status "ignored": spam, noise, nothing to do)
- ``set_owner``: ``owner`` (a name; a new name makes a new owner)
- ``set_area``: ``area`` (an area id: the theme moves there and stays through re-clustering)
- ``merge``: ``into`` (a theme id)
- ``split``: ``item_ids``, ``label`` (the items leave ``theme_id`` for a new theme)
- ``move``: ``item_ids``; here ``theme_id`` is the theme they go to, as in ``review.move_items``
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import Area, Delivery, Owner, Theme, ThemeMembership
from core.themes import review
from core.themes.review import ReviewError
from core.types import CLOSED_STATUSES, ROUTABLE_STATUSES, MembershipSource, ThemeStatus

ACTIONS = ("rename", "set_status", "ignore", "set_owner", "set_area", "merge", "split", "move")


@dataclass(frozen=True)
class Preview:
    """A change described for the person about to make it: what happens, and what to look out for."""

    action: str
    title: str
    lines: list[str]
    warnings: list[str] = field(default_factory=list)


def quoted(text: str | None) -> str:
    return f"“{text}”" if text is not None else "nobody"


def counted(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def agree(count: int, one: str, many: str) -> str:
    """The verb that goes with ``count`` ("1 item moves", "2 items move")."""
    return one if count == 1 else many


def items_that(count: int, one: str, many: str) -> str:
    return f"{counted(count, 'item')} {agree(count, one, many)}"


def preview(session: Session, action: str, theme_id: int, **params: Any) -> Preview:
    """Describe ``action`` on ``theme_id`` with ``params`` without applying it (``InvalidInput`` or a 404
    when the action would be refused)."""
    if action == "rename":
        return _rename(session, theme_id, _param(action, params, "label", str))
    if action == "set_status":
        return _set_status(session, theme_id, _param(action, params, "status", str))
    if action == "ignore":
        return _set_status(session, theme_id, ThemeStatus.IGNORED, action="ignore")
    if action == "set_owner":
        return _set_owner(session, theme_id, _param(action, params, "owner", str))
    if action == "set_area":
        return _set_area(session, theme_id, _param(action, params, "area", int))
    if action == "merge":
        return _merge(session, theme_id, _param(action, params, "into", int))
    if action == "split":
        return _split(session, theme_id, _item_ids(action, params), _param(action, params, "label", str))
    if action == "move":
        return _move(session, theme_id, _item_ids(action, params))
    raise ReviewError(f"unknown action {action!r}; one of {list(ACTIONS)}")


def _param(action: str, params: dict[str, Any], name: str, kind: type) -> Any:
    value = params.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ReviewError(f"{action} needs {name!r} ({kind.__name__})")
    return value


def _item_ids(action: str, params: dict[str, Any]) -> list[int]:
    value = params.get("item_ids")
    if not isinstance(value, list | tuple) or not all(isinstance(item, int) for item in value):
        raise ReviewError(f"{action} needs 'item_ids' (a list of item ids)")
    return list(value)


def item_count(session: Session, theme_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(ThemeMembership)
                              .where(ThemeMembership.theme_id == theme_id)) or 0)


def ticket_count(session: Session, theme_id: int) -> int:
    """Tickets made or queued for a theme (dead deliveries are left out: they never reached anyone)."""
    return int(session.scalar(select(func.count()).select_from(Delivery).where(Delivery.theme_id == theme_id)
                              .where(Delivery.state != "dead")) or 0)


def _same_label_elsewhere(session: Session, label: str, theme_id: int) -> int | None:
    return session.scalar(select(Theme.id).where(func.lower(Theme.label) == label.lower())
                          .where(Theme.id != theme_id).where(Theme.status.not_in(("archived", "merged")))
                          .order_by(Theme.id).limit(1))


def _rename(session: Session, theme_id: int, label: str) -> Preview:
    theme = review.check_theme(session, theme_id)
    new_label = review.check_label(label)
    lines, warnings = [], []
    if new_label == theme.label:
        lines.append(f"The name stays {quoted(new_label)}")
    else:
        lines.append(f"{quoted(theme.label)} will be renamed {quoted(new_label)}")
    if not theme.label_locked:
        lines.append("The name will stay through re-clustering (the clustering no longer names this theme)")
    other = _same_label_elsewhere(session, new_label, theme.id)
    if other is not None:
        warnings.append(f"theme #{other} is already called {quoted(new_label)}")
    return Preview("rename", f"Rename {quoted(theme.label)}", lines, warnings)


def _set_status(session: Session, theme_id: int, status: str, action: str = "set_status") -> Preview:
    theme = review.check_theme(session, theme_id)
    new_status = review.check_status(status)
    title = (f"Ignore {quoted(theme.label)}" if action == "ignore"
             else f"Set the status of {quoted(theme.label)}")
    if new_status == theme.status:
        return Preview(action, title, [f"Nothing changes: the status is already {quoted(new_status)}"])
    lines = [f"The status of {quoted(theme.label)} changes from {quoted(theme.status)} to {quoted(new_status)}"]
    warnings = []
    if theme.status in ROUTABLE_STATUSES and new_status not in ROUTABLE_STATUSES:
        lines.append("It will no longer be routed: no new tickets are made for it")
    elif theme.status not in ROUTABLE_STATUSES and new_status in ROUTABLE_STATUSES:
        lines.append("It will be routed again at the next routing run")
    if new_status in CLOSED_STATUSES and theme.status not in CLOSED_STATUSES:
        warnings.append(f"marking it {quoted(new_status)} closes the loop: people whose feedback is in it are "
                        "told in their threads where the channel takes replies, and undo cannot take a sent "
                        "reply back")
    if new_status in (ThemeStatus.MERGED, ThemeStatus.ARCHIVED):
        warnings.append(f"{quoted(new_status)} is normally set by merging or by the clustering; the theme keeps "
                        "its items")
    tickets = ticket_count(session, theme.id)
    if tickets:
        warnings.append(f"{quoted(theme.label)} has {counted(tickets, 'ticket')}; they are not changed in "
                        "their trackers")
    return Preview(action, title, lines, warnings)


def _set_owner(session: Session, theme_id: int, owner: str) -> Preview:
    theme = review.check_theme(session, theme_id)
    review.check_owner(owner)
    current = session.get(Owner, theme.owner_id) if theme.owner_id is not None else None
    title = f"Assign {quoted(theme.label)} to {owner}"
    if current is not None and current.name == owner:
        return Preview("set_owner", title, [f"Nothing changes: {quoted(owner)} already owns it"])
    lines = [f"The owner of {quoted(theme.label)} changes from {quoted(current.name if current else None)} "
             f"to {quoted(owner)}"]
    if session.scalar(select(Owner.id).where(Owner.name == owner)) is None:
        lines.append(f"A new owner {quoted(owner)} will be created")
    tickets = ticket_count(session, theme.id)
    warnings = ([f"its {counted(tickets, 'ticket')} stay with the teams they were sent to"] if tickets else [])
    return Preview("set_owner", title, lines, warnings)


def _set_area(session: Session, theme_id: int, area_id: int) -> Preview:
    theme = review.check_theme(session, theme_id)
    area = review.check_area(session, area_id)
    current = session.get(Area, theme.area_id) if theme.area_id is not None else None
    title = f"Move {quoted(theme.label)} to the area {quoted(area.label)}"
    if current is not None and current.id == area.id:
        return Preview("set_area", title, [f"Nothing changes: it is in {quoted(area.label)} already"])
    lines = [f"{quoted(theme.label)} leaves {quoted(current.label) if current else 'no area'} for "
             f"{quoted(area.label)}, with its {counted(item_count(session, theme.id), 'item')}",
             "It stays there when themes are found again; only a person moves it out"]
    return Preview("set_area", title, lines)


def _merge(session: Session, theme_id: int, into_id: int) -> Preview:
    source, target = review.check_merge(session, theme_id, into_id)
    lines, warnings = [], []
    if target.id != into_id:
        requested = session.get(Theme, into_id)
        assert requested is not None
        lines.append(f"{quoted(requested.label)} was merged into {quoted(target.label)} earlier, so everything "
                     f"goes to {quoted(target.label)}")
    moving = item_count(session, source.id)
    if moving:
        lines.append(f"{items_that(moving, 'moves', 'move')} from {quoted(source.label)} to {quoted(target.label)}")
    else:
        lines.append(f"{quoted(source.label)} has no items; none move")
    lines.append(f"{quoted(source.label)} will be marked merged; later clusterings send its items to "
                 f"{quoted(target.label)}")
    lines.append(f"{quoted(target.label)} will have {counted(item_count(session, target.id) + moving, 'item')}, "
                 f"and keeps its name, status {quoted(target.status)} and owner")
    earlier = int(session.scalar(select(func.count()).select_from(Theme)
                                 .where(Theme.merged_into_id == source.id)) or 0)
    if earlier:
        lines.append(f"{counted(earlier, 'theme')} merged into {quoted(source.label)} before will point to "
                     f"{quoted(target.label)}")
    placed = int(session.scalar(select(func.count()).select_from(ThemeMembership)
                                .where(ThemeMembership.theme_id == source.id)
                                .where(ThemeMembership.source == MembershipSource.HUMAN)) or 0)
    if placed:
        lines.append(f"{counted(placed, 'item')} placed by a person {agree(placed, 'stays', 'stay')} placed, in "
                     f"{quoted(target.label)}")
    tickets = ticket_count(session, source.id)
    if tickets:
        warnings.append(f"{quoted(source.label)} has {counted(tickets, 'ticket')}; they stay linked to it and get "
                        f"no more updates, since its items now count for {quoted(target.label)}")
    if source.status in CLOSED_STATUSES and target.status not in CLOSED_STATUSES:
        warnings.append(f"{quoted(source.label)} is {quoted(source.status)}; its items join a theme that is "
                        f"{quoted(target.status)}")
    return Preview("merge", f"Merge {quoted(source.label)} into {quoted(target.label)}", lines, warnings)


def _split(session: Session, theme_id: int, item_ids: list[int], label: str) -> Preview:
    source, memberships, new_label = review.check_split(session, theme_id, item_ids, label)
    owner = session.get(Owner, source.owner_id) if source.owner_id is not None else None
    remaining = item_count(session, source.id) - len(memberships)
    lines = [f"{items_that(len(memberships), 'moves', 'move')} from {quoted(source.label)} to a new theme "
             f"{quoted(new_label)}",
             f"{quoted(new_label)} starts with the status {quoted(source.status)} and the owner "
             f"{quoted(owner.name if owner else None)}",
             f"{quoted(source.label)} keeps {counted(remaining, 'item')}",
             "A person placed them: re-clustering keeps them in the new theme, and items like them may follow"]
    warnings = []
    if remaining == 0:
        warnings.append(f"{quoted(source.label)} will be left without items")
    other = _same_label_elsewhere(session, new_label, source.id)
    if other is not None:
        warnings.append(f"theme #{other} is already called {quoted(new_label)}")
    return Preview("split", f"Split {counted(len(memberships), 'item')} off {quoted(source.label)}", lines,
                   warnings)


def _move(session: Session, theme_id: int, item_ids: list[int]) -> Preview:
    wanted, target = review.check_move(session, item_ids, theme_id)
    lines, warnings = [], []
    if target.id != theme_id:
        requested = session.get(Theme, theme_id)
        assert requested is not None
        lines.append(f"{quoted(requested.label)} was merged into {quoted(target.label)}, so they go to "
                     f"{quoted(target.label)}")
    rows = review.membership_rows(session, wanted)
    leaving: Counter[int] = Counter(int(row[1]) for row in rows if row[1] is not None and row[1] != target.id)
    for from_id, count in sorted(leaving.items()):
        origin = session.get(Theme, from_id)
        assert origin is not None
        lines.append(f"{items_that(count, 'moves', 'move')} from {quoted(origin.label)} to {quoted(target.label)}")
        if item_count(session, from_id) == count:
            warnings.append(f"{quoted(origin.label)} will be left without items")
    unthemed = sum(1 for row in rows if row[1] is None)
    if unthemed:
        lines.append(f"{counted(unthemed, 'item')} without a theme {agree(unthemed, 'goes', 'go')} to "
                     f"{quoted(target.label)}")
    already = sum(1 for row in rows if row[1] == target.id)
    if already:
        lines.append(f"{counted(already, 'item')} already in {quoted(target.label)} will be pinned there")
    lines.append("A person placed them: re-clustering keeps them there, and near-identical items follow")
    return Preview("move", f"Move {counted(len(wanted), 'item')} to {quoted(target.label)}", lines, warnings)
