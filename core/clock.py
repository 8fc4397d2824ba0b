"""Time, in one place: everything stored and compared is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime | None) -> datetime | None:
    """In UTC: SQLite hands back naive datetimes, read as UTC; an offset (``-07:00``) is converted, since
    SQLite would store its wall-clock time and read it back as UTC, hours out."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_timestamp(value: object) -> datetime | None:
    """An ISO 8601 timestamp as sources send it ("Z" included), or None when absent or malformed."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
