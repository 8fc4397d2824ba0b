"""``feedbackloop channels vitality NAME [--weeks N]``: a channel's community figures per ISO week."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.table import Table

from core.cli.common import consoles, open_loop
from core.community.decline import open_episode
from core.community.vitality import MAX_WEEKS, Vitality, channel_vitality, require_channel


def vitality_table(vitality: Vitality) -> Table:
    """One row per week, oldest first; fits 80 columns (the current week is marked ``*``)."""
    table = Table(title=f"{vitality.channel}: community per ISO week (UTC)", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, collapse_padding=True)
    table.add_column("week", no_wrap=True)
    for column in ("posts", "staff", "authors", "new", "back", "threads", "answered", "median h"):
        table.add_column(column, justify="right", no_wrap=True)
    for week in vitality.weeks:
        share = week.staff_answer_share
        answered = ("-" if week.threads_staff_answered is None or not week.threads_opened
                    else f"{week.threads_staff_answered} ({share:.0%})" if share is not None else "-")
        median = week.median_hours_to_staff_answer
        table.add_row(week.iso_week + ("" if week.complete else "*"), str(week.posts), str(week.staff_posts),
                      str(week.active_authors), str(week.new_authors), str(week.returning_authors),
                      str(week.threads_opened), answered, "-" if median is None else f"{median:.1f}")
    return table


def channels_vitality(name: str,
                      weeks: Annotated[int, typer.Option(min=1, max=MAX_WEEKS, help="ISO weeks shown.")] = 12) -> None:
    """A channel's posts, authors and staff answers per week, its trend and whether it is declining."""
    loop = open_loop()
    with loop.session() as session:
        require_channel(session, name)
        vitality = channel_vitality(session, name, weeks)
        episode = open_episode(session, name)
        declining = (f" Declining from the week of {episode.peak_week:%Y-%m-%d} (notice {episode.notice_state})."
                     if episode is not None else "")
    out = consoles().out
    out.print(vitality_table(vitality))
    out.print("* still running; posts: the community's, staff apart; back: returning authors;\n"
              "answered: threads opened that week and answered by staff; median h: time to it.")
    trend = vitality.trend
    slope = f" ({trend.slope:+.1f} posts a week)" if trend.slope is not None else ""
    out.print(f"Posts per week: {trend.direction}{slope}. {vitality.active_authors} community authors.{declining}")


def register(channels: typer.Typer) -> None:
    channels.command("vitality")(channels_vitality)
