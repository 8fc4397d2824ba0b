"""``feedbackloop cluster FILE.csv``: cluster an exported file without touching the database."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from clustering.base import UNTHEMED
from core.intake.file_reader import ImportFileError, read_text
from core.loop import FeedbackLoop
from core.themes.build import theme_pipeline


def cluster_csv(loop: FeedbackLoop, path: Path, text_column: str, output: Path) -> str:
    """Write OUT.csv with every input column plus ``theme_id`` (-1 unthemed), ``theme_label``, and the theme's
    area: ``area_id`` (-1 unthemed) and ``area_label``."""
    import io

    text = read_text(path)
    if not text.strip():
        raise ImportFileError(f"{path}: the file is empty")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = list(reader.fieldnames or [])
    if text_column not in header:
        raise ImportFileError(f"{path}: no column {text_column!r}; the header has {header}")
    try:
        rows = list(reader)
    except csv.Error as error:
        raise ImportFileError(f"{path}: line {reader.line_num}: {error}") from error
    if not rows:
        raise ImportFileError(f"{path}: no rows after the header")
    texts = [(row.get(text_column) or "").strip() for row in rows]
    present = [index for index, value in enumerate(texts) if value]
    theme_ids = np.full(len(rows), UNTHEMED, dtype=np.int64)
    area_ids = np.full(len(rows), UNTHEMED, dtype=np.int64)
    labels: dict[int, str] = {}
    area_labels: dict[int, str] = {}
    if present:
        embeddings = loop.embedder.embed([texts[i] for i in present])
        result = theme_pipeline(loop).run([texts[i] for i in present], embeddings)
        theme_ids[present] = result.labels
        area_ids[present] = result.area_labels()
        labels = {theme: info.title for theme, info in result.themes.items()}
        area_labels = {area: info.title for area, info in result.areas.items()}
    extra = [name for name in ("theme_id", "theme_label", "area_id", "area_label") if name not in header]
    with output.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header + extra)
        writer.writeheader()
        for row, theme, area in zip(rows, theme_ids.tolist(), area_ids.tolist(), strict=True):
            writer.writerow({**row, "theme_id": theme, "theme_label": labels.get(theme, ""), "area_id": area,
                             "area_label": area_labels.get(area, "")})
    themed = int((theme_ids >= 0).sum())
    return (f"{len(rows)} rows, {len(labels)} themes in {len(area_labels)} areas, {len(rows) - themed} unthemed; "
            f"wrote {output}")
