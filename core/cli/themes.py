"""Commands about themes: ``cluster`` (the database, or a CSV file) and ``themes``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.cli import tables
from core.cli.common import consoles, embed_with_progress, open_loop
from core.db import refresh_statistics
from core.errors import InvalidInput
from core.loop import FeedbackLoop
from core.settings import get_settings
from core.themes.areas import area_views
from core.themes.build import RECLUSTERING_REWRITES, recluster
from core.themes.csv_file import cluster_csv
from core.themes.views import theme_views


def cluster(
    file: Annotated[Path | None, typer.Argument(help="Cluster this CSV instead of the database.")] = None,
    text_column: Annotated[str, typer.Option(help="Text column of FILE.")] = "text",
    output_file: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Where to write FILE's themes: its columns plus theme_id, theme_label, area_id and "
                               "area_label (-1 and empty for an unthemed row).")] = None,
) -> None:
    """Re-cluster stored feedback into themes grouped in areas, or cluster a CSV file into OUT.csv without the
    database (each row's theme_id, theme_label, area_id, area_label)."""
    if file is not None:
        if output_file is None:
            raise InvalidInput("--output is required when clustering a file")
        consoles().out.print(cluster_csv(FeedbackLoop(get_settings()), file, text_column, output_file))
        return
    loop = open_loop()
    embed_with_progress(loop)
    with loop.session() as session:
        report = recluster(loop, session)
    refresh_statistics(loop.engine, RECLUSTERING_REWRITES)
    consoles().out.print(f"{report.items} items: {report.themes} themes ({report.created} new, {report.kept} kept) "
                         f"in {report.areas} areas; {report.placed_far} outliers placed in their nearest theme, "
                         f"{report.unthemed} unthemed.")


def themes(limit: Annotated[int, typer.Option(help="Show at most this many themes.")] = 50) -> None:
    """Show the themes as a table: size, share of voice, sentiment, owner."""
    loop = open_loop()
    with loop.session() as session:
        consoles().out.print(tables.themes_table(theme_views(session)[:limit]))


def areas() -> None:
    """Show the areas (groups of themes) as a table: themes, size, share of voice, trend."""
    loop = open_loop()
    with loop.session() as session:
        consoles().out.print(tables.areas_table(area_views(session)))


def register(app: typer.Typer) -> None:
    app.command()(cluster)
    app.command()(themes)
    app.command()(areas)
