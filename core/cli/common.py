"""What every command group shares: the consoles, opening the loop, progress bars."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from core.loop import FeedbackLoop
from core.settings import Settings, get_settings
from core.themes.build import count_pending_embeddings, embed_pending


class Consoles:
    """Standard output for results, standard error for progress and errors (so pipes get only results)."""

    def __init__(self) -> None:
        self.out = Console()
        self.err = Console(stderr=True, soft_wrap=True)


@cache
def consoles() -> Consoles:
    """Made on first use, not at import; Rich resolves ``sys.stdout`` at each print, so tests capture it."""
    return Consoles()


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Progress]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=consoles().err, transient=False) as progress:
        progress.add_task(description, total=total)
        yield progress


def open_loop(settings: Settings | None = None) -> FeedbackLoop:
    """The loop over the configured database, migrated to the newest schema."""
    loop = FeedbackLoop(settings or get_settings())
    loop.migrate()
    return loop


def embed_with_progress(loop: FeedbackLoop) -> int:
    with loop.session() as session:
        total = count_pending_embeddings(session, loop.embedder.name)
    if not total:
        return 0
    with progress_bar("Embedding", total) as progress, loop.session() as session:
        task = progress.task_ids[0]
        return embed_pending(loop, session, progress=lambda n: progress.advance(task, n))
