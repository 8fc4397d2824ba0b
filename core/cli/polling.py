"""``feedbackloop channels poll [NAME]`` and ``channels poll-status``: polled channels from the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from core.cli.common import consoles, open_loop
from core.intake.polling import PollReport, PollStatus, poll_channel, poll_due, poll_statuses

EXIT_SOURCE_FAILED = 1


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else "-"


def poll_table(statuses: Sequence[PollStatus]) -> Table:
    table = Table(title=f"{len(statuses)} polled channels")
    for column in ("name", "type", "items", "last success", "next poll", "failures", "throttled until",
                   "last error"):
        table.add_column(column)
    for status in statuses:
        table.add_row(status.name, status.plugin, str(status.items_total), _when(status.last_success_at),
                      _when(status.next_poll_at), str(status.consecutive_failures), _when(status.throttled_until),
                      (status.last_error or "")[:80])
    return table


def _summary(report: PollReport) -> str:
    return (f"Polled {report.channels} channel(s), {report.pages} page(s): {report.created} new, "
            f"{report.updated} updated, {report.duplicates} already stored, {report.deleted} deleted"
            + (f", {report.skipped} skipped (no text)" if report.skipped else "") + ".")


def channels_poll(
    name: Annotated[str | None, typer.Argument(help="A polled channel; without one, every channel that is due.")]
    = None,
) -> None:
    """Poll now: one channel (whenever it was due), or every polled channel that is due.

    A source that asked to wait (429 Retry-After) is still left alone; exits 1 when a source failed.
    """
    loop = open_loop()
    report = poll_channel(loop, name) if name else poll_due(loop)
    output = consoles()
    output.out.print(_summary(report))
    for channel, error in sorted(report.errors.items()):
        output.err.print(f"[bold yellow]{channel}:[/] {error}", highlight=False)
    if report.failed or report.throttled:
        raise typer.Exit(code=EXIT_SOURCE_FAILED)


def channels_poll_status() -> None:
    """List polled channels: items stored, last success, next poll, failures, throttling, last error."""
    consoles().out.print(poll_table(poll_statuses(open_loop())))


def register(channels: typer.Typer) -> None:
    channels.command("poll")(channels_poll)
    channels.command("poll-status")(channels_poll_status)
