"""The ``feedbackloop`` command line (Typer + Rich). Thin: every command calls into ``core``.

Each command group is a module with a ``register(app)``; the one place that turns an error into an exit
code is ``ErrorsExitTwo``: a ``FeedbackloopError`` anywhere below prints its message on one line and
exits with code 2 (bad input or configuration); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from core.cli import admin, embeddings, intake, routing, server, themes, users, workers
from core.cli.common import consoles
from core.errors import FeedbackloopError
from core.settings import get_settings

EXIT_BAD_INPUT = 2


class ErrorsExitTwo(TyperGroup):
    """The root command group: domain errors become one clear line on standard error and exit code 2."""

    def invoke(self, ctx: Any) -> Any:  # typer's own (vendored, private) click Context
        try:
            return super().invoke(ctx)
        except FeedbackloopError as error:
            consoles().err.print(f"[bold red]error:[/] {error.message}", highlight=False)
            raise typer.Exit(code=EXIT_BAD_INPUT) from error


app = typer.Typer(cls=ErrorsExitTwo, help="feedbackloop: customer feedback in, themes out, owners told.",
                  no_args_is_help=True, add_completion=False)


@app.callback()
def check_settings() -> None:
    """Every command reads FEEDBACKLOOP_* settings: a malformed one is a clear error, not a traceback."""
    get_settings()


for group in (intake, themes, routing, server, admin, users, workers, embeddings):
    group.register(app)


def main() -> None:
    app()
