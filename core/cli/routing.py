"""Commands that send themes to owners: ``route`` and ``deliveries`` (list, retry, the worker)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.audit import cli_actor
from core.cli import tables
from core.cli.common import consoles, open_loop
from core.errors import InvalidInput
from core.logs import configure_logging
from core.routing.outbox import list_deliveries, retry_delivery
from core.routing.plan import decide, route
from core.routing.rules import load_rules
from core.settings import get_settings
from core.worker import run_forever, run_round


def route_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show who would get each theme; change nothing.")] = False,
    rules: Annotated[Path | None, typer.Option(help="Ownership rules file (TOML).")] = None,
) -> None:
    """Assign owners to themes by the rules and deliver one ticket per theme to each owner's target."""
    settings = get_settings()
    if rules is not None:
        settings = settings.model_copy(update={"rules_file": rules})
    if settings.rules_file is not None:
        load_rules(settings.rules_file, settings)  # a broken file is reported before anything is touched
    loop = open_loop(settings)
    if dry_run:
        with loop.session() as session:
            consoles().out.print(tables.routing_table(decide(loop, session, suggest=True)))
        return
    report = route(loop)
    consoles().out.print(f"{report.decided} themes routed, {report.unrouted} without a matching rule; "
                         f"{report.sent} tickets created, {report.updated} updated, {report.failed} failed.")


def deliveries_list(
    state: Annotated[str | None, typer.Option(help="pending, sent, failed or dead")] = None,
    limit: Annotated[int, typer.Option()] = 100,
) -> None:
    """List deliveries with their state, attempts, next attempt and last error."""
    loop = open_loop()
    with loop.session() as session:
        consoles().out.print(tables.deliveries_table(list_deliveries(session, state, limit)))


def deliveries_retry(
    delivery_id: Annotated[list[int] | None, typer.Argument(help="Delivery ids; none with --all-failed.")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="Retry every failed or dead delivery.")] = False,
) -> None:
    """Make failed or dead deliveries due now; the next worker round sends them."""
    loop = open_loop()
    with loop.session() as session:
        ids = list(delivery_id or [])
        if all_failed:
            ids += [d.id for state in ("failed", "dead") for d in list_deliveries(session, state, 10_000)]
        if not ids:
            raise InvalidInput("name delivery ids or pass --all-failed")
        for one_id in ids:
            retry_delivery(session, one_id, actor=cli_actor())
    consoles().out.print(f"{len(ids)} deliveries due now.")


def deliveries_work(
    once: Annotated[bool, typer.Option("--once", help="One round, then exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between rounds.")] = 5.0,
) -> None:
    """The delivery worker: send due tickets, retries and updates; read tracker statuses; check spikes."""
    configure_logging(get_settings())  # text or JSON lines on standard error (FEEDBACKLOOP_LOG_FORMAT)
    loop = open_loop()
    if once:
        report = run_round(loop)
        consoles().out.print(f"{report.sent} created, {report.updated} updated, {report.failed} failed, "
                             f"{report.deferred} deferred (circuit open).")
        return
    run_forever(loop, interval_s=interval)


def register(app: typer.Typer) -> None:
    app.command(name="route")(route_command)
    deliveries = typer.Typer(help="Tickets on their way to targets: list, retry, run the worker.",
                             no_args_is_help=True)
    deliveries.command("list")(deliveries_list)
    deliveries.command("retry")(deliveries_retry)
    deliveries.command("work")(deliveries_work)
    app.add_typer(deliveries, name="deliveries")
