"""Rich tables for the CLI."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from core.models import Channel, Delivery
from core.plugin_manager import PluginInfo
from core.routing.plan import RoutingDecision
from core.themes.areas import AreaView
from core.types import ThemeView


def areas_table(views: Sequence[AreaView]) -> Table:
    """Areas with their figures; the themes table's "area" column gives each theme's area id."""
    table = Table(title=f"{len(views)} areas")
    table.add_column("area", justify="right", no_wrap=True)
    table.add_column("name", ratio=1, min_width=24, no_wrap=True, overflow="ellipsis")
    for column in ("themes", "items", "share", "trend"):
        table.add_column(column, justify="right", no_wrap=True)
    for view in views:
        table.add_row(str(view.id), view.label, str(view.themes), str(view.volume), f"{view.share_of_voice:.1%}",
                      f"{view.trend:.2f}")
    return table


def themes_table(views: Sequence[ThemeView]) -> Table:
    table = Table(title=f"{len(views)} themes")
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("area", justify="right", no_wrap=True)
    table.add_column("theme", ratio=1, min_width=24, no_wrap=True, overflow="ellipsis")
    for column in ("items", "share", "sentiment"):
        table.add_column(column, justify="right", no_wrap=True)
    for column in ("kind", "owner", "status"):
        table.add_column(column, no_wrap=True)
    for view in views:
        table.add_row(str(view.id), str(view.area_id) if view.area_id is not None else "-", view.label,
                      str(view.volume), f"{view.share_of_voice:.1%}",
                      f"{view.mean_sentiment:+.2f}", view.dominant_kind or "", view.owner or "-", view.status)
    return table


def routing_table(decisions: Sequence[RoutingDecision]) -> Table:
    table = Table(title="Routing (dry run)")
    for column in ("id", "theme", "items", "owner", "target", "decided by"):
        table.add_column(column)
    for decision in decisions:
        choice, suggestion = decision.choice, decision.suggestion
        if choice is not None:
            owner, target, why = choice.owner, choice.target_type, f"rule {choice.rule}"
        elif suggestion is not None:
            owner, target = f"{suggestion.owner}?", "-"
            why = (f"no rule matched; suggested from similar themes {list(suggestion.similar_theme_ids)}, "
                   f"confidence {suggestion.confidence:.2f}")
        else:
            owner, target, why = "(none)", "-", "no rule matched; no similar routed theme"
        table.add_row(str(decision.theme.id), decision.theme.label, str(decision.theme.volume), owner, target, why)
    return table


def deliveries_table(deliveries: Sequence[Delivery]) -> Table:
    table = Table(title=f"{len(deliveries)} deliveries")
    for column in ("id", "theme", "owner", "target", "state", "attempts", "ticket", "next attempt", "last error"):
        table.add_column(column)
    for delivery in deliveries:
        table.add_row(str(delivery.id), str(delivery.theme_id), delivery.owner.name if delivery.owner else "-",
                      delivery.target_type, delivery.state, str(delivery.attempts), delivery.external_ref or "-",
                      f"{delivery.next_attempt_at:%Y-%m-%d %H:%M:%S}" if delivery.next_attempt_at else "-",
                      (delivery.last_error or "")[:80])
    return table


def plugins_table(infos: Sequence[PluginInfo]) -> Table:
    table = Table(title="Plugins")
    for column in ("name", "version", "built-in", "hooks"):
        table.add_column(column)
    for info in infos:
        table.add_row(info.name, info.version or "-", "yes" if info.builtin else "no", ", ".join(info.hooks))
    return table


def channels_table(channels: Sequence[Channel]) -> Table:
    table = Table(title="Channels")
    for column in ("name", "plugin", "secret from", "options"):
        table.add_column(column)
    for channel in channels:
        table.add_row(channel.name, channel.plugin, channel.secret_env or "-",
                      ", ".join(f"{k}={v}" for k, v in (channel.options or {}).items()))
    return table
