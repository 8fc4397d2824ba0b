"""The ``feedbackloop`` command line (Typer + Rich). Thin: every command calls into ``core``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from core.cli import tables
from core.intake.channels import ChannelError, add_channel, list_channels, remove_channel
from core.intake.file_reader import ColumnMapping, ImportFileError, drafts_from_file
from core.intake.ingest import InvalidItem, ingest
from core.loop import ConfigurationError, FeedbackLoop
from core.plugin_manager import list_plugins
from core.routing.plan import decide, route
from core.routing.rules import RulesError, load_rules
from core.settings import Settings, get_settings
from core.themes.build import count_pending_embeddings, embed_pending, recluster, theme_views

app = typer.Typer(help="feedbackloop: customer feedback in, themes out, owners told.", no_args_is_help=True,
                  add_completion=False)
channels_app = typer.Typer(help="Configure intake channels (webhook endpoints).", no_args_is_help=True)
app.add_typer(channels_app, name="channels")
keys_app = typer.Typer(help="API keys for `Authorization: Bearer <key>`.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
deliveries_app = typer.Typer(help="Tickets on their way to targets: list, retry, run the worker.",
                             no_args_is_help=True)
app.add_typer(deliveries_app, name="deliveries")
console = Console()
errors = Console(stderr=True, soft_wrap=True)


def fail(message: str) -> NoReturn:
    """Print a clear error and exit with code 2 (bad input or configuration)."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=2)


@app.callback()
def check_settings() -> None:
    """Every command reads FEEDBACKLOOP_* settings: a malformed one is a clear error, not a traceback."""
    try:
        get_settings()
    except ValidationError as error:
        problems = "; ".join(f"FEEDBACKLOOP_{'_'.join(str(part) for part in problem['loc']).upper()}: "
                             f"{problem['msg']} (got {problem.get('input')!r})" for problem in error.errors())
        fail(f"invalid setting - {problems}")


def open_loop(settings: Settings | None = None) -> FeedbackLoop:
    loop = FeedbackLoop(settings or get_settings())
    loop.migrate()
    return loop


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Progress]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=errors, transient=False) as progress:
        progress.add_task(description, total=total)
        yield progress


def embed_with_progress(loop: FeedbackLoop) -> int:
    with loop.session() as session:
        total = count_pending_embeddings(session)
    if not total:
        return 0
    with progress_bar("Embedding", total) as progress, loop.session() as session:
        task = progress.task_ids[0]
        return embed_pending(loop, session, progress=lambda n: progress.advance(task, n))


def ingest_file(
    file: Annotated[Path, typer.Argument(help="A CSV, TSV or JSONL export.")],
    text_column: Annotated[str, typer.Option(help="Column holding the feedback text.")] = "text",
    id_column: Annotated[str | None, typer.Option(help="Column with a stable id (re-imports add nothing).")] = None,
    author_column: Annotated[str | None, typer.Option()] = None,
    url_column: Annotated[str | None, typer.Option()] = None,
    created_at_column: Annotated[str | None, typer.Option(help="ISO 8601 timestamps.")] = None,
    metadata_column: Annotated[list[str] | None, typer.Option(help="Kept as metadata; repeatable.")] = None,
    channel: Annotated[str, typer.Option(help="Channel name recorded on each item.")] = "import",
    file_format: Annotated[str | None, typer.Option("--format", help="csv, tsv or jsonl (default: extension)")] = None,
) -> None:
    """Import feedback from a file. The whole file is checked first: a bad file stores nothing.

    Rows are committed in chunks: an interrupted import resumes where it stopped when run again.
    """
    mapping = ColumnMapping(text=text_column, id=id_column, author=author_column, url=url_column,
                            created_at=created_at_column, metadata=tuple(metadata_column or ()))
    try:
        drafts = drafts_from_file(file, mapping, channel, file_format)
    except ImportFileError as error:
        fail(str(error))
    from core.intake.file_import import import_drafts

    loop = open_loop()
    try:
        with progress_bar(f"Ingesting {file.name}", len(drafts)) as progress:
            report = import_drafts(loop, file, drafts, channel,
                                   progress=lambda rows: progress.advance(progress.task_ids[0], rows))
    except InvalidItem as error:
        fail(f"{file}: {error}")
    console.print(f"{report.created} new, {report.updated} updated, {report.duplicates} already stored"
                  + (f", {report.linked} linked to the same author's earlier words." if report.linked else "."))


app.command(name="ingest")(ingest_file)


@app.command()
def cluster(
    file: Annotated[Path | None, typer.Argument(help="Cluster this CSV instead of the database.")] = None,
    text_column: Annotated[str, typer.Option(help="Text column of FILE.")] = "text",
    output_file: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write FILE's themes.")] = None,
) -> None:
    """Re-cluster stored feedback into themes, or cluster a CSV file into OUT.csv without the database."""
    if file is not None:
        from core.themes.csv_file import cluster_csv

        if output_file is None:
            fail("--output is required when clustering a file")
        loop = FeedbackLoop(get_settings())
        try:
            summary = cluster_csv(loop, file, text_column, output_file)
        except ImportFileError as error:
            fail(str(error))
        console.print(summary)
        return
    loop = open_loop()
    embed_with_progress(loop)
    with loop.session() as session:
        report = recluster(loop, session)
    console.print(f"{report.items} items: {report.themes} themes ({report.created} new, {report.kept} kept), "
                  f"{report.unthemed} unthemed.")


@app.command()
def themes(limit: Annotated[int, typer.Option(help="Show at most this many themes.")] = 50) -> None:
    """Show the themes as a table: size, share of voice, sentiment, owner."""
    loop = open_loop()
    with loop.session() as session:
        console.print(tables.themes_table(theme_views(session)[:limit]))


@app.command(name="route")
def route_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show who would get each theme; change nothing.")] = False,
    rules: Annotated[Path | None, typer.Option(help="Ownership rules file (TOML).")] = None,
) -> None:
    """Assign owners to themes by the rules and deliver one ticket per theme to each owner's target."""
    settings = get_settings()
    if rules is not None:
        settings = settings.model_copy(update={"rules_file": rules})
    if settings.rules_file is not None:
        try:
            load_rules(settings.rules_file)
        except RulesError as error:
            fail(str(error))
    loop = open_loop(settings)
    if dry_run:
        with loop.session() as session:
            console.print(tables.routing_table(decide(loop, session, suggest=True)))
        return
    try:
        report = route(loop)
    except ValueError as error:
        fail(str(error))
    console.print(f"{report.decided} themes routed, {report.unrouted} without a matching rule; "
                  f"{report.sent} tickets created, {report.updated} updated, {report.failed} failed.")


@deliveries_app.command("list")
def deliveries_list(
    state: Annotated[str | None, typer.Option(help="pending, sent, failed or dead")] = None,
    limit: Annotated[int, typer.Option()] = 100,
) -> None:
    """List deliveries with their state, attempts, next attempt and last error."""
    from core.routing.outbox import DeliveryError, list_deliveries

    loop = open_loop()
    try:
        with loop.session() as session:
            console.print(tables.deliveries_table(list_deliveries(session, state, limit)))
    except DeliveryError as error:
        fail(str(error))


@deliveries_app.command("retry")
def deliveries_retry(
    delivery_id: Annotated[list[int] | None, typer.Argument(help="Delivery ids; none with --all-failed.")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="Retry every failed or dead delivery.")] = False,
) -> None:
    """Make failed or dead deliveries due now; the next worker round sends them."""
    from core.routing.outbox import DeliveryError, list_deliveries, retry_delivery

    loop = open_loop()
    try:
        with loop.session() as session:
            ids = list(delivery_id or [])
            if all_failed:
                ids += [d.id for state in ("failed", "dead") for d in list_deliveries(session, state, 10_000)]
            if not ids:
                fail("name delivery ids or pass --all-failed")
            for one_id in ids:
                retry_delivery(session, one_id, actor="cli")
    except DeliveryError as error:
        fail(str(error))
    console.print(f"{len(ids)} deliveries due now.")


@deliveries_app.command("work")
def deliveries_work(
    once: Annotated[bool, typer.Option("--once", help="One round, then exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between rounds.")] = 5.0,
) -> None:
    """The delivery worker: send due tickets, retries and updates; read tracker statuses; check spikes."""
    from core.worker import run_forever, run_round

    loop = open_loop()
    if once:
        report = run_round(loop)
        console.print(f"{report.sent} created, {report.updated} updated, {report.failed} failed, "
                      f"{report.deferred} deferred (circuit open).")
        return
    run_forever(loop, interval_s=interval)


@app.command()
def plugins() -> None:
    """List plugins, their versions and the hooks each implements."""
    loop = FeedbackLoop(get_settings())
    console.print(tables.plugins_table(list_plugins(loop.pm)))


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log",
                                             help="Log every request (costs throughput).")] = True,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server processes (webhook throughput).")] = 1,
) -> None:
    """Serve the API and the dashboard."""
    import uvicorn

    if workers == 1:
        uvicorn.run(app_factory(), host=host, port=port, access_log=access_log)
        return
    open_loop().close()  # migrate once here, not in every worker at the same time
    uvicorn.run("core.cli.app:app_factory", factory=True, workers=workers, host=host, port=port, access_log=access_log)


def app_factory() -> Any:
    """The served app (for ``serve --workers N`` uvicorn imports it by name in each process)."""
    import gc

    from api.app import create_app

    app = create_app(get_settings())
    # Everything loaded so far lives as long as the process: moving it out of the collector's sight
    # keeps full collections short, which would otherwise show up as latency spikes under load.
    gc.freeze()
    return app


@app.command()
def run(
    demo: Annotated[bool, typer.Option("--demo", help="Use the bundled sample of real feedback.")] = False,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the dashboard afterwards.")] = True,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """The main job: ingest (the demo sample with --demo), embed, cluster, route, show, serve."""
    from core.demo import DEMO_RULES, demo_drafts

    settings = get_settings()
    if demo and settings.rules_file is None:
        settings = settings.model_copy(update={"rules_file": DEMO_RULES})
    loop = open_loop(settings)
    if demo:
        drafts = demo_drafts()
        with progress_bar("Ingesting demo feedback", len(drafts)) as progress, loop.session() as session:
            report = ingest(loop, session, drafts)
            progress.advance(progress.task_ids[0], len(drafts))
        console.print(f"Demo feedback: {report.created} new, {report.duplicates} already stored.")
    try:
        embed_with_progress(loop)
    except ConfigurationError as error:
        fail(str(error))
    with loop.session() as session:
        cluster_report = recluster(loop, session)
    route_report = route(loop)
    console.print(f"{cluster_report.themes} themes; {route_report.decided} routed to owners.")
    with loop.session() as session:
        console.print(tables.themes_table(theme_views(session)))
    if serve_after:
        import uvicorn

        from api.app import create_app

        console.print(f"Dashboard: http://{host}:{port}  (Ctrl-C to stop)")
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


@channels_app.command("add")
def channels_add(
    name: str,
    plugin: Annotated[str, typer.Option(help="Channel type, e.g. webhook.")],
    secret_env: Annotated[str | None, typer.Option(help="Environment variable holding the secret.")] = None,
    option: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
) -> None:
    """Add a channel; its webhook URL is /webhooks/NAME."""
    options = {}
    for pair in option or []:
        if "=" not in pair:
            fail(f"--option {pair!r} must be KEY=VALUE")
        key, value = pair.split("=", 1)
        options[key] = value
    loop = open_loop()
    try:
        with loop.session() as session:
            add_channel(loop, session, name, plugin, secret_env, options)
    except ChannelError as error:
        fail(str(error))
    console.print(f"Channel {name!r} added: POST {loop.settings.public_url.rstrip('/')}/webhooks/{name}")


@channels_app.command("list")
def channels_list() -> None:
    """List configured channels."""
    loop = open_loop()
    with loop.session() as session:
        console.print(tables.channels_table(list_channels(session)))


@channels_app.command("remove")
def channels_remove(name: str) -> None:
    """Remove a channel (its items stay)."""
    loop = open_loop()
    try:
        with loop.session() as session:
            remove_channel(session, name)
    except ChannelError as error:
        fail(str(error))
    console.print(f"Channel {name!r} removed.")


@app.command()
def forget(
    author: Annotated[str, typer.Option(help="The author's name or id as the channel sent it.")],
    actor: Annotated[str, typer.Option(help="Who asked, for the audit log.")] = "cli",
) -> None:
    """Erase an author's items, embeddings and theme memberships, and record the erasure."""
    from core.intake.erasure import ForgetError, forget_author

    loop = open_loop()
    try:
        with loop.session() as session:
            report = forget_author(session, author, actor=actor)
    except ForgetError as error:
        fail(str(error))
    console.print(f"Erased {report.items} items and {report.sightings} sightings of that author; "
                  f"{report.themes_scrubbed} themes' quotes scrubbed. Recorded in the audit log.")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Who or what uses the key (shown in audit entries).")],
    role: Annotated[str, typer.Option(help="admin (everything) or member (feedback and themes).")] = "member",
) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    from core.auth.api_keys import create_api_key

    if role not in ("admin", "member"):
        fail(f"--role must be admin or member, not {role!r}")
    if not name.strip():
        fail("the key needs a name")
    loop = open_loop()
    with loop.session() as session:
        key = create_api_key(session, name.strip(), role)
    console.print(key, highlight=False, soft_wrap=True)


def main() -> None:
    app()
