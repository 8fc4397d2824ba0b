"""File imports (CSV and JSONL exports) are idempotent and resume after an interruption."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

import core.intake.file_import
from core.intake.file_import import import_drafts
from core.intake.file_reader import ColumnMapping, ImportFileError, drafts_from_file
from core.loop import FeedbackLoop
from core.models import FeedbackItem, ImportRun


def survey(tmp_path: Path, rows: int) -> Path:
    lines = ["ticket,comment,plan"] + [f"T{i},\"Export number {i} failed, again\",pro" for i in range(rows)]
    path = tmp_path / "tickets.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def stored(loop: FeedbackLoop) -> int:
    with loop.session() as session:
        return int(session.scalar(select(func.count()).select_from(FeedbackItem)) or 0)


def test_interrupted_import_resumes_and_reimport_adds_nothing(any_loop: FeedbackLoop, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = survey(tmp_path, 1200)
    drafts = drafts_from_file(path, ColumnMapping(text="comment", id="ticket", metadata=("plan",)), "tickets")
    real_ingest, calls = core.intake.file_import.ingest, []

    def crash_on_second_chunk(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # what Ctrl-C does in the middle of an import
        return real_ingest(*args, **kwargs)

    monkeypatch.setattr(core.intake.file_import, "ingest", crash_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        import_drafts(any_loop, path, drafts, "tickets", chunk_rows=500)
    assert stored(any_loop) == 500
    monkeypatch.setattr(core.intake.file_import, "ingest", real_ingest)
    resumed = import_drafts(any_loop, path, drafts, "tickets", chunk_rows=500)
    assert (resumed.created, resumed.duplicates) == (700, 500) and stored(any_loop) == 1200
    again = import_drafts(any_loop, path, drafts, "tickets", chunk_rows=500)
    assert again.created == 0 and stored(any_loop) == 1200
    with any_loop.session() as session:
        run = session.scalar(select(ImportRun))
        assert run is not None and run.rows_done == 1200 and run.finished_at is not None


def test_jsonl_review_export_without_ids_is_idempotent(loop: FeedbackLoop, tmp_path: Path) -> None:
    path = tmp_path / "reviews.jsonl"
    path.write_text('{"review": "App crashes on login", "user": "r1", "stars": 1}\n'
                    '{"review": "Great update", "user": "r2", "stars": 5}\n', encoding="utf-8")
    mapping = ColumnMapping(text="review", author="user", metadata=("stars",))
    first = import_drafts(loop, path, drafts_from_file(path, mapping, "appstore"), "appstore")
    # The same reviews in a later, longer export (a different file): no id column, yet nothing doubles.
    longer = tmp_path / "reviews-2.jsonl"
    longer.write_text(path.read_text() + '{"review": "Needs dark mode", "user": "r3", "stars": 3}\n')
    second = import_drafts(loop, longer, drafts_from_file(longer, mapping, "appstore"), "appstore")
    assert (first.created, second.created, second.duplicates) == (2, 1, 2) and stored(loop) == 3


@pytest.mark.parametrize("depth", [65, 100_000])
def test_a_record_nested_too_deep_is_a_clear_error(tmp_path: Path, depth: int) -> None:
    """Just past the limit, and deep enough that ``json`` itself raises RecursionError: both name the line."""
    path = tmp_path / "deep.jsonl"
    path.write_text('{"text": "fine"}\n' + '{"text": "x", "meta": ' + "[" * depth + "]" * depth + "}\n")
    with pytest.raises(ImportFileError, match="line 2: nests more than 64 levels"):
        drafts_from_file(path, ColumnMapping(), "reviews")
