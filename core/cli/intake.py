"""Commands that bring feedback in or take it out: ``ingest``, ``channels``, ``forget``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.audit import cli_actor
from core.cli import channel_types, polling, tables, vitality
from core.cli.common import consoles, open_loop, progress_bar
from core.errors import InvalidInput
from core.intake.channels import add_channel, list_channels, remove_channel
from core.intake.erasure import forget_author
from core.intake.file_import import import_drafts
from core.intake.file_reader import ColumnMapping, drafts_from_file
from core.intake.import_presets import preset_rows


def ingest_file(
    file: Annotated[Path, typer.Argument(help="A CSV, TSV or JSONL export.")],
    text_column: Annotated[str, typer.Option(help="Column holding the feedback text.")] = "text",
    id_column: Annotated[str | None, typer.Option(help="Column with a stable id (re-imports add nothing).")] = None,
    author_column: Annotated[str | None, typer.Option()] = None,
    url_column: Annotated[str | None, typer.Option()] = None,
    created_at_column: Annotated[str | None, typer.Option(help="ISO 8601 timestamps.")] = None,
    metadata_column: Annotated[list[str] | None, typer.Option(help="Kept as metadata; repeatable.")] = None,
    channel: Annotated[str | None, typer.Option(help="Channel name recorded on each item (default: import, or "
                                                    "the preset's).")] = None,
    file_format: Annotated[str | None, typer.Option("--format", help="csv, tsv or jsonl (default: extension)")] = None,
    preset: Annotated[str | None, typer.Option(help="A known export's columns, instead of the --*-column options: "
                                                    "google-play (Play Console's reviews report).")] = None,
) -> None:
    """Import feedback from a file. The whole file is checked first: a bad file stores nothing.

    Rows are committed in chunks: an interrupted import resumes where it stopped when run again.
    """
    mapping = ColumnMapping(text=text_column, id=id_column, author=author_column, url=url_column,
                            created_at=created_at_column, metadata=tuple(metadata_column or ()))
    if preset is not None:
        if mapping != ColumnMapping():
            raise InvalidInput(f"--preset {preset} names the columns itself; leave out the --*-column options")
        rows = preset_rows(file, preset, channel, file_format)
        drafts, channel = rows.drafts, rows.drafts[0].channel
        if rows.skipped:
            consoles().err.print(f"{rows.skipped} rows left out: {rows.skipped_why}.")
    else:
        channel = channel or "import"
        drafts = drafts_from_file(file, mapping, channel, file_format)
    loop = open_loop()
    with progress_bar(f"Ingesting {file.name}", len(drafts)) as progress:
        report = import_drafts(loop, file, drafts, channel,
                               progress=lambda rows: progress.advance(progress.task_ids[0], rows))
    consoles().out.print(f"{report.created} new, {report.updated} updated, {report.duplicates} already stored"
                         + (f", {report.linked} linked to the same author's earlier words." if report.linked
                            else "."))


def forget(
    author: Annotated[str, typer.Option(help="The author's name or id as the channel sent it.")],
    actor: Annotated[str | None, typer.Option(help="Who asked, for the audit log (default: cli:<your user>).")]
    = None,
) -> None:
    """Erase an author's items, embeddings and theme memberships, and record the erasure."""
    loop = open_loop()
    with loop.session() as session:
        # The person at the terminal is recorded too when someone else asked: the log says who did it.
        who = (cli_actor() if actor is None else f"{cli_actor()} for {actor}")[:128]
        report = forget_author(session, author, actor=who, pseudonyms=loop.pseudonyms)
    consoles().out.print(f"Erased {report.items} items and {report.sightings} sightings of that author; "
                         f"{report.themes_scrubbed} themes' quotes scrubbed. Recorded in the audit log.")


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
            raise InvalidInput(f"--option {pair!r} must be KEY=VALUE")
        key, value = pair.split("=", 1)
        options[key] = value
    loop = open_loop()
    with loop.session() as session:
        add_channel(loop, session, name, plugin, secret_env, options)
    if loop.channel_types[plugin].poll is not None:
        consoles().out.print(f"Channel {name!r} added: polled by the worker; 'feedbackloop channels poll {name}' "
                             "polls it now.")
        return
    consoles().out.print(f"Channel {name!r} added: POST {loop.settings.public_url.rstrip('/')}/webhooks/{name}")


def channels_list() -> None:
    """List configured channels."""
    loop = open_loop()
    with loop.session() as session:
        consoles().out.print(tables.channels_table(list_channels(session)))


def channels_remove(name: str) -> None:
    """Remove a channel (its items stay)."""
    loop = open_loop()
    with loop.session() as session:
        remove_channel(session, name)
    consoles().out.print(f"Channel {name!r} removed.")


def register(app: typer.Typer) -> None:
    app.command(name="ingest")(ingest_file)
    app.command()(forget)
    channels = typer.Typer(help="Configure intake channels (webhook endpoints).", no_args_is_help=True)
    channels.command("add")(channels_add)
    channels.command("list")(channels_list)
    channels.command("remove")(channels_remove)
    polling.register(channels)  # channels poll [NAME], channels poll-status
    channel_types.register(channels)  # channels types [TYPE]
    vitality.register(channels)  # channels vitality NAME
    app.add_typer(channels, name="channels")
