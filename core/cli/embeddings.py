"""``feedbackloop embeddings prepare``: build the configured backend's local model now rather than at first use."""

from __future__ import annotations

import time

import typer

from core.cli.common import consoles
from core.loop import FeedbackLoop
from core.settings import get_settings


def prepare() -> None:
    """Export (onnx) or distil (model2vec) the bundled MiniLM for FEEDBACKLOOP_EMBEDDING_BACKEND into the cache
    folder, so the worker's first batch does not wait for it; torch needs nothing."""
    loop = FeedbackLoop(get_settings())
    try:
        embedder = loop.embedder
        build = getattr(embedder, "prepare", None)
        if build is None:
            consoles().out.print(f"{embedder.name}: nothing to prepare (it runs the packaged model as it is).")
            return
        started = time.perf_counter()
        artefact = build()
        consoles().out.print(f"{embedder.name}: {artefact} ({time.perf_counter() - started:.1f} s)")
    finally:
        loop.close()


def register(app: typer.Typer) -> None:
    embeddings = typer.Typer(help="The embedding model's local backends (FEEDBACKLOOP_EMBEDDING_BACKEND).",
                             no_args_is_help=True)
    embeddings.command()(prepare)
    app.add_typer(embeddings, name="embeddings")
