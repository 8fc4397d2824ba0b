"""Resumable, idempotent file imports: a checked file is stored in chunks, each with its progress.

The whole file is read and validated first (a bad file stores nothing). It is then stored in chunks
of ``CHUNK_ROWS``, each chunk in its own transaction together with the import's progress row, keyed
by the file's SHA-256 and the channel. An interrupted import (Ctrl-C, crash, lost connection) picks
up after the last committed chunk when it is run again; a finished one adds nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import select

from core.clock import utcnow
from core.intake.api_channels import refuse_webhook_channels
from core.intake.ingest import IngestReport, InvalidItem, ingest, validate
from core.loop import FeedbackLoop
from core.models import ImportRun
from core.types import ItemDraft

CHUNK_ROWS = 500


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_drafts(loop: FeedbackLoop, path: Path, drafts: Sequence[ItemDraft], channel: str,
                  progress: Callable[[int], None] | None = None, chunk_rows: int = CHUNK_ROWS) -> IngestReport:
    """Store a file's drafts, resuming a previous, interrupted import of the same file."""
    try:
        validate(drafts)
    except InvalidItem as error:  # the person fixes the file, so the file names the problem
        raise InvalidItem(f"{path}: {error.message}") from error
    digest = file_digest(path)
    with loop.session() as session:
        refuse_webhook_channels(session, [channel], "a file import")  # a re-sent id would rewrite their items
        run = session.scalar(select(ImportRun).where(ImportRun.channel == channel, ImportRun.file_sha256 == digest))
        if run is None:
            run = ImportRun(channel=channel, file_sha256=digest, file_name=path.name[:512], rows_total=len(drafts),
                            rows_done=0)
            session.add(run)
            session.flush()
        run_id, done = run.id, run.rows_done
    report = IngestReport(duplicates=done)  # rows of an earlier run are stored already
    if progress and done:
        progress(done)
    for start in range(done, len(drafts), chunk_rows):
        chunk = drafts[start:start + chunk_rows]
        with loop.session() as session:
            part = ingest(loop, session, chunk)
            run = session.get(ImportRun, run_id)
            assert run is not None
            run.rows_done = start + len(chunk)
            if run.rows_done >= len(drafts):
                run.finished_at = utcnow()
        for name in ("created", "updated", "duplicates", "linked"):
            setattr(report, name, getattr(report, name) + getattr(part, name))
        report.item_ids.extend(part.item_ids)
        if progress:
            progress(len(chunk))
    return report
