"""``feedbackloop channels types [TYPE]``: the channel types installed, and the options each one takes."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from core.cli.common import consoles
from core.errors import InvalidInput
from core.intake.channels import known_options
from core.loop import FeedbackLoop
from core.settings import get_settings
from core.types import ChannelType


def types_table(channel_types: dict[str, ChannelType]) -> Table:
    table = Table(title=f"{len(channel_types)} channel types")
    table.add_column("type", no_wrap=True)
    table.add_column("intake", no_wrap=True)
    table.add_column("replies", no_wrap=True)
    table.add_column("description", ratio=1, overflow="fold")
    for name, channel_type in sorted(channel_types.items()):
        table.add_row(name, "polled" if channel_type.poll else "webhook", "yes" if channel_type.replies else "-",
                      channel_type.description)
    return table


def options_table(channel_type: ChannelType) -> Table:
    table = Table(title=f"Options of {channel_type.name!r}")
    table.add_column("option", no_wrap=True)
    table.add_column("what it does", ratio=1, overflow="fold")
    options = known_options(channel_type)
    for option, description in sorted(options.items()):
        table.add_row(option, description)
    if not options:
        table.add_row("-", "not declared by the plugin: any option is accepted")
    return table


def channels_types(
    name: Annotated[str | None, typer.Argument(help="A type, to list the options it takes.")] = None,
) -> None:
    """List the installed channel types, or one type's options."""
    channel_types = FeedbackLoop(get_settings()).channel_types
    if name is None:
        consoles().out.print(types_table(channel_types))
        return
    if name not in channel_types:
        raise InvalidInput(f"no channel type {name!r}; installed: {', '.join(sorted(channel_types))}")
    consoles().out.print(options_table(channel_types[name]))


def register(channels: typer.Typer) -> None:
    channels.command("types")(channels_types)
