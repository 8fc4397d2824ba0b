"""Commands that serve: ``serve`` (the API and dashboard) and ``run`` (the main job, end to end).

The web app is named, not imported: uvicorn builds it from ``api.app:app_factory`` (in each worker
process with ``--workers``), so ``core`` never imports ``api`` and the server reads its settings from the
environment like every other command.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from core.cli import tables
from core.cli.common import consoles, embed_with_progress, open_loop, progress_bar
from core.demo import DEMO_RULES, demo_account, demo_drafts
from core.intake.ingest import ingest
from core.routing.plan import route
from core.settings import get_settings
from core.themes.areas import area_views
from core.themes.build import recluster
from core.themes.views import theme_views

APP_FACTORY = "api.app:app_factory"


def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log",
                                             help="Log every request (costs throughput).")] = True,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server processes (webhook throughput).")] = 1,
) -> None:
    """Serve the API and the workspace."""
    import uvicorn

    if workers > 1:
        open_loop().close()  # migrate once here, not in every worker at the same time
    uvicorn.run(APP_FACTORY, factory=True, workers=workers, host=host, port=port, access_log=access_log)


def run(
    demo: Annotated[bool, typer.Option("--demo", help="Use the bundled sample of real feedback.")] = False,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the workspace afterwards.")] = True,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """The main job: ingest (the demo sample with --demo), embed, cluster, route, show, serve."""
    settings = get_settings()
    if demo and settings.rules_file is None:
        settings = settings.model_copy(update={"rules_file": DEMO_RULES})
    loop = open_loop(settings)
    out = consoles().out
    if demo:
        drafts = demo_drafts()
        with progress_bar("Ingesting demo feedback", len(drafts)) as progress, loop.session() as session:
            report = ingest(loop, session, drafts)
            progress.advance(progress.task_ids[0], len(drafts))
        out.print(f"Demo feedback: {report.created} new, {report.duplicates} already stored.")
    embed_with_progress(loop)
    with loop.session() as session:
        cluster_report = recluster(loop, session)
    route_report = route(loop)
    out.print(f"{cluster_report.themes} themes in {cluster_report.areas} areas; {route_report.decided} routed to "
              "owners.")
    with loop.session() as session:
        out.print(tables.areas_table(area_views(session)))
        out.print(tables.themes_table(theme_views(session)))
    account = None
    if demo:
        with loop.session() as session:
            account = demo_account(session)
    loop.close()
    how = "(Ctrl-C to stop)" if serve_after else "(start it with `feedbackloop serve`)"
    out.print(f"Workspace: sign in at http://{host}:{port}/signin  {how}", highlight=False, soft_wrap=True)
    if account is not None:
        out.print(f"Demo account (made for this demo only): {account[0]}  password: {account[1]}",
                  highlight=False, soft_wrap=True)
    if serve_after:
        import uvicorn

        if settings.rules_file is not None:  # the served app reads the environment, as `serve` does
            os.environ["FEEDBACKLOOP_RULES_FILE"] = str(settings.rules_file)
            get_settings.cache_clear()
        uvicorn.run(APP_FACTORY, factory=True, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(run)
