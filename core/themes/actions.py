"""One entry point for the workspace's theme actions: preview what an action will change, then apply it.

The page (api/pages/theme.py) posts an action's name and parameters; ``describe`` answers with what it
will change (core/themes/preview.py, plus routing's dry run for "route now") and ``apply`` does it through
core/themes/review.py, which audits each change with the person's name so it can be undone from the
history (core/themes/undo.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.loop import FeedbackLoop
from core.models import Area, AuditEntry, Delivery, Theme
from core.routing.plan import decide, plan_deliveries
from core.themes import preview as previews
from core.themes.review import ReviewError, check_theme, merge_themes, move_items, split_theme, update_theme
from core.types import ThemeStatus

ACTIONS = (*previews.ACTIONS, "route")


@dataclass(frozen=True)
class Applied:
    """What an applied action left: the theme to show next and the audit entry that can undo it."""

    theme_id: int
    audit_id: int | None
    message: str
    moved_item_ids: tuple[int, ...] = ()
    source_theme_id: int | None = None


def describe(loop: FeedbackLoop, session: Session, action: str, theme_id: int, **params: Any) -> previews.Preview:
    """What ``action`` would change; writes nothing (refuses as the action itself would)."""
    if action == "route":
        return _route_preview(loop, session, theme_id)
    return previews.preview(session, action, theme_id, **params)


def _route_preview(loop: FeedbackLoop, session: Session, theme_id: int) -> previews.Preview:
    theme = check_theme(session, theme_id)
    decisions = decide(loop, session, suggest=True, theme_ids=[theme.id])
    title = f"Route “{theme.label}” now"
    if not decisions:
        raise ReviewError(f"theme {theme.id} is {theme.status}: only new, triaged, planned and in-progress "
                          "themes are routed")
    decision = decisions[0]
    if decision.choice is None:
        hint = (f" Themes like it went to {decision.suggestion.owner}." if decision.suggestion else "")
        return previews.Preview("route", title, [f"No routing rule matches this theme; nothing is sent.{hint}"],
                                ["Add a rule on the admin page, or set an owner and a rule for them."])
    choice = decision.choice
    key = f"theme-{theme.id}:{choice.target_type}:{choice.owner}"
    existing = session.scalar(select(Delivery).where(Delivery.idempotency_key == key))
    line = (f"The ticket for {choice.owner} ({choice.target_type}) is brought up to date."
            if existing is not None else f"A ticket goes to {choice.owner} through {choice.target_type}.")
    return previews.Preview("route", title, [line, f"Rule: {choice.rule}."])


def apply(loop: FeedbackLoop, session: Session, action: str, theme_id: int, actor: str,
          **params: Any) -> Applied:
    """Do ``action`` (checked by ``describe``'s rules again: the page may be stale)."""
    describe(loop, session, action, theme_id, **params)
    # The entry to offer for undo is the one this action writes: an action that changes nothing (a status
    # set to what it already is) writes none, and must not offer to undo someone's earlier change.
    session.flush()
    newest_before = session.scalar(select(func.max(AuditEntry.id))) or 0

    def _last_entry(session: Session, actor: str) -> int | None:
        session.flush()
        found = session.scalar(select(func.max(AuditEntry.id)).where(AuditEntry.actor == actor[:128],
                                                                      AuditEntry.id > newest_before))
        return int(found) if found is not None else None

    if action == "rename":
        update_theme(loop, session, theme_id, actor, label=params["label"])
        return Applied(theme_id, _last_entry(session, actor), "Renamed.")
    if action in ("set_status", "ignore"):
        status = ThemeStatus.IGNORED if action == "ignore" else params["status"]
        update_theme(loop, session, theme_id, actor, status=status)
        return Applied(theme_id, _last_entry(session, actor), f"Status set to {status}.")
    if action == "set_owner":
        update_theme(loop, session, theme_id, actor, owner=params["owner"])
        return Applied(theme_id, _last_entry(session, actor), f"Owner set to {params['owner']}.")
    if action == "set_area":
        area = session.get(Area, params["area"])
        theme = session.get(Theme, theme_id)
        if theme is not None and area is not None and theme.area_id == area.id:
            return Applied(theme_id, None, f"Already in the area “{area.label}”.")  # nothing written, nothing to undo
        update_theme(loop, session, theme_id, actor, area_id=params["area"])
        return Applied(theme_id, _last_entry(session, actor), f"Moved to the area “{area.label if area else ''}”.")
    if action == "merge":
        target = merge_themes(loop, session, theme_id, params["into"], actor)
        return Applied(target.id, _last_entry(session, actor), f"Merged into “{target.label}”.")
    if action == "split":
        new_theme = split_theme(loop, session, theme_id, list(params["item_ids"]), params["label"], actor)
        return Applied(new_theme.id, _last_entry(session, actor), f"Split into “{new_theme.label}”.",
                       tuple(params["item_ids"]), theme_id)
    if action == "move":
        source = params.get("source")
        move_items(loop, session, list(params["item_ids"]), theme_id, actor)
        return Applied(theme_id, _last_entry(session, actor), f"Moved {len(params['item_ids'])} items.",
                       tuple(params["item_ids"]), source if isinstance(source, int) else None)
    if action == "route":
        report = plan_deliveries(loop, session, theme_ids=[theme_id])
        return Applied(theme_id, None, "Routed: the ticket is being sent." if report.decided
                       else "No routing rule matches this theme; nothing was sent.")
    raise ReviewError(f"unknown action {action!r}; one of {list(ACTIONS)}")
