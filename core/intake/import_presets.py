"""Presets for ``feedbackloop ingest --preset``: exports whose columns are known, read without a mapping.

``google-play``: the reviews report Google Play Console exports (Download reports > Reviews, or the
``reviews/reviews_<package>_<YYYYMM>.csv`` files of the developer account's Cloud Storage bucket; UTF-16,
one file per app and month, read as they are). Columns: ``Package Name``, ``App Version Code``, ``App
Version Name``, ``Reviewer Language``, ``Device``, ``Review Submit Date and Time``, ``Review Submit Millis
Since Epoch``, ``Review Last Update Date and Time``, ``Review Last Update Millis Since Epoch``, ``Star
Rating``, ``Review Title``, ``Review Text``, ``Developer Reply Date and Time``, ``Developer Reply Millis
Since Epoch``, ``Developer Reply Text``, ``Review Link`` (tests/data/google_play/SOURCE.md).

A review is one item: its title (when the reviewer wrote one) and text; its id is the review id in
``Review Link``, so importing next month's file, or the same month again with more days in it, adds only
the new reviews, and a review edited since (a newer ``Review Last Update``) replaces its text. Ratings
without text are not feedback anyone can read and are left out (counted).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from core.clock import aware
from core.intake.file_reader import ImportFileError, read_records
from core.types import ItemDraft

GOOGLE_PLAY_REQUIRED = ("Review Text", "Star Rating", "Review Submit Date and Time")
GOOGLE_PLAY_EDITABLE = frozenset({"rating", "app_version_code", "app_version_name", "developer_replied"})


@dataclass(frozen=True)
class PresetRows:
    """What a preset made of a file: the drafts, and how many rows it left out (and why, in one line)."""

    drafts: list[ItemDraft]
    skipped: int = 0
    skipped_why: str = ""


def _cell(row: Mapping[str, Any], column: str) -> str:
    value = row.get(column)
    return str(value).strip() if value is not None else ""


def _moment(text: str, millis: str) -> datetime | None:
    """A report timestamp (ISO 8601, "Z"), else its milliseconds-since-epoch twin; in UTC."""
    if text:
        try:
            return aware(datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError:
            pass
    if millis.isdigit():
        return datetime.fromtimestamp(int(millis) / 1000, UTC)
    return None


def google_play_review_id(link: str) -> str | None:
    """The review id in a Review Link (``reviewId=`` in Play Console links, ``reviewid=`` in older ones)."""
    if not link:
        return None
    parts = urlsplit(link)
    query = parse_qs(parts.query) | parse_qs(parts.fragment.split("?", 1)[-1])
    for key in ("reviewId", "reviewid"):
        if query.get(key):
            return query[key][0]
    return None


def _google_play_draft(path: Path, number: int, row: Mapping[str, Any], channel: str) -> ItemDraft:
    title, body = _cell(row, "Review Title"), _cell(row, "Review Text")
    rating = _cell(row, "Star Rating")
    if rating and rating not in {"1", "2", "3", "4", "5"}:
        raise ImportFileError(f"{path}: line {number}: 'Star Rating' is {rating!r}, not 1 to 5")
    submitted = _moment(_cell(row, "Review Submit Date and Time"), _cell(row, "Review Submit Millis Since Epoch"))
    package = _cell(row, "Package Name")
    review_id = google_play_review_id(_cell(row, "Review Link"))
    # Without a link, the submission time names the review within its app (stable across re-exports).
    external_id = review_id or (f"{package}:{_cell(row, 'Review Submit Millis Since Epoch')}"
                                if _cell(row, "Review Submit Millis Since Epoch") else None)
    metadata = {
        "rating": int(rating) if rating else None, "package_name": package or None,
        "app_version_code": _cell(row, "App Version Code") or None,
        "app_version_name": _cell(row, "App Version Name") or None,
        "reviewer_language": _cell(row, "Reviewer Language") or None, "device": _cell(row, "Device") or None,
        "developer_replied": bool(_cell(row, "Developer Reply Text")),
    }
    return ItemDraft(
        text=f"{title}\n\n{body}" if title and not body.startswith(title) else body, channel=channel,
        external_id=f"google-play:{external_id}" if external_id else None, url=_cell(row, "Review Link") or None,
        created_at=submitted, metadata=metadata, editable_metadata=GOOGLE_PLAY_EDITABLE,
        updated_at=_moment(_cell(row, "Review Last Update Date and Time"),
                           _cell(row, "Review Last Update Millis Since Epoch")) or submitted,
    )


def google_play_rows(path: Path, channel: str, fmt: str | None = None) -> PresetRows:
    """Every review with text in a Google Play reviews report, or an ImportFileError before anything is stored."""
    records = read_records(path, fmt or "csv")
    columns = {name for _, record in records for name in record}
    missing = [name for name in GOOGLE_PLAY_REQUIRED if name not in columns]
    if missing:
        raise ImportFileError(f"{path}: not a Google Play reviews report: no column(s) {missing}; "
                              f"the file has {sorted(columns)}")
    drafts, rating_only = [], 0
    for number, row in records:
        if not _cell(row, "Review Text"):
            rating_only += 1
            continue
        drafts.append(_google_play_draft(path, number, row, channel))
    if not drafts:
        raise ImportFileError(f"{path}: no review in the file has text ({rating_only} ratings without text)")
    return PresetRows(drafts, rating_only, "ratings without text")


# Preset name -> (reader, the channel its items are recorded under unless --channel says otherwise).
PRESETS: dict[str, tuple[Callable[[Path, str, str | None], PresetRows], str]] = {
    "google-play": (google_play_rows, "google-play"),
}


def preset_rows(path: Path, preset: str, channel: str | None, fmt: str | None = None) -> PresetRows:
    """A file read with a preset; an ImportFileError naming the presets for an unknown one."""
    if preset not in PRESETS:
        raise ImportFileError(f"unknown --preset {preset!r}; presets: {', '.join(sorted(PRESETS))}")
    reader, default_channel = PRESETS[preset]
    return reader(path, channel or default_channel, fmt)
