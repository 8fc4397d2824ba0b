"""Reading feedback exports (CSV or JSONL) with a column mapping; the whole file is checked first."""

from __future__ import annotations

import codecs
import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core.errors import FeedbackloopError
from core.json_depth import nesting_depth
from core.types import ItemDraft

# As deep as a webhook body may nest (plugins/webhook_signing.py): no export's record needs more.
MAX_RECORD_DEPTH = 64


class ImportFileError(FeedbackloopError):
    """A file that cannot be imported; the message names the file, the line and the problem."""


def too_deep(path: Path, number: int) -> ImportFileError:
    return ImportFileError(f"{path}: line {number}: nests more than {MAX_RECORD_DEPTH} levels deep")


@dataclass(frozen=True)
class ColumnMapping:
    text: str = "text"
    id: str | None = None
    author: str | None = None
    url: str | None = None
    created_at: str | None = None
    metadata: tuple[str, ...] = field(default_factory=tuple)


def read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ImportFileError(f"{path}: cannot read: {error.strerror}") from error
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Google Play's report exports, Excel's "Unicode"
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as error:
            raise ImportFileError(f"{path}: starts as UTF-16 but is not (offset {error.start}); re-export the file"
                                  ) from error
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ImportFileError(f"{path}: line {line}: not UTF-8 (byte 0x{raw[error.start]:02x} at offset "
                              f"{error.start}); re-export the file as UTF-8") from error


def detect_format(path: Path, given: str | None) -> str:
    fmt = (given or path.suffix.lstrip(".")).lower()
    if fmt in {"jsonl", "ndjson"}:
        return "jsonl"
    if fmt in {"csv", "tsv"}:
        return fmt
    raise ImportFileError(f"{path}: unknown format {fmt!r}; use a .csv, .tsv or .jsonl file, or --format")


def read_records(path: Path, fmt: str | None = None) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) pairs from a CSV, TSV or JSONL file."""
    text = read_text(path)
    kind = detect_format(path, fmt)
    if not text.strip():
        raise ImportFileError(f"{path}: the file is empty")
    if kind == "jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ImportFileError(f"{path}: line {number}: not valid JSON: {error.msg}") from error
            except RecursionError as error:  # json itself gives up on very deep nesting
                raise too_deep(path, number) from error
            # Deep nesting breaks the code that walks records later (redaction, JSON columns): refused here.
            if nesting_depth(record, MAX_RECORD_DEPTH) > MAX_RECORD_DEPTH:
                raise too_deep(path, number)
            if not isinstance(record, dict):
                raise ImportFileError(f"{path}: line {number}: expected a JSON object")
            records.append((number, record))
        return records
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if kind == "tsv" else ",")
    try:
        rows = [(reader.line_num, dict(row)) for row in reader]
    except csv.Error as error:
        raise ImportFileError(f"{path}: line {reader.line_num}: {error}") from error
    header = reader.fieldnames or []
    for number, row in rows:
        if None in row:
            raise ImportFileError(f"{path}: line {number}: more fields than the header's {len(header)}")
    return rows


def column_names(records: list[tuple[int, dict[str, Any]]]) -> set[str]:
    names: set[str] = set()
    for _, record in records:
        names |= set(record)
    return names


def drafts_from_file(path: Path, mapping: ColumnMapping, channel: str, fmt: str | None = None) -> list[ItemDraft]:
    """Every row as an ItemDraft, or an ImportFileError before anything is stored."""
    records = read_records(path, fmt)
    if not records:
        raise ImportFileError(f"{path}: no rows after the header")
    available = column_names(records)
    wanted = [mapping.text, mapping.id, mapping.author, mapping.url, mapping.created_at, *mapping.metadata]
    missing = [name for name in wanted if name and name not in available]
    if missing:
        raise ImportFileError(f"{path}: column(s) {missing} not found; the file has {sorted(available)}")
    drafts = []
    for number, record in records:
        text = record.get(mapping.text)
        if not isinstance(text, str) or not text.strip():
            raise ImportFileError(f"{path}: line {number}: column {mapping.text!r} is empty")
        created_at = None
        if mapping.created_at and record.get(mapping.created_at):
            try:
                created_at = datetime.fromisoformat(str(record[mapping.created_at]))
            except ValueError as error:
                raise ImportFileError(f"{path}: line {number}: {mapping.created_at!r} is not an ISO 8601 "
                                      f"date: {record[mapping.created_at]!r}") from error
        drafts.append(ItemDraft(
            text=text.strip(),
            channel=channel,
            external_id=_optional(record, mapping.id),
            author=_optional(record, mapping.author),
            url=_optional(record, mapping.url),
            created_at=created_at,
            metadata={name: record.get(name) for name in mapping.metadata},
        ))
    return drafts


def _optional(record: dict[str, Any], column: str | None) -> str | None:
    if column is None or record.get(column) in (None, ""):
        return None
    return str(record[column])
