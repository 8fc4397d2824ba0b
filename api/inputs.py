"""What the API accepts beyond plain types: ids a database column can hold, timestamps in UTC, and JSON
objects of bounded size and depth. Each bound turns input that used to fail deep inside (a 500) into a 422
that says what is wrong, and each is visible in the OpenAPI document."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AfterValidator, Field

from core.json_depth import nesting_depth

# Ids are signed 64-bit integers from 1 up in both databases: a larger number names no row, and the
# drivers fail on it (OverflowError) instead of finding nothing.
INT64_MAX = 2**63 - 1
# Metadata is stored with the item and returned with it: a few facts, not a document. The bytes of its
# compact JSON and how deep it nests are bounded (a batch of 1,000 maximal items stays under the body limit).
MAX_METADATA_BYTES = 8 * 1024
MAX_METADATA_DEPTH = 8

# In bodies ids are strict: JSON's false or "7" is not item 0 or 7.
RowId = Annotated[int, Field(ge=1, le=INT64_MAX, strict=True)]
ThemeIdPath = Annotated[int, Path(ge=1, le=INT64_MAX, description="A theme's id.")]
ItemIdPath = Annotated[int, Path(ge=1, le=INT64_MAX, description="A feedback item's id.")]
DeliveryIdPath = Annotated[int, Path(ge=1, le=INT64_MAX, description="A delivery's id.")]
ThemeIdQuery = Annotated[int | None, Query(ge=1, le=INT64_MAX, description="Only items in this theme.")]
Offset = Annotated[int, Query(ge=0, le=INT64_MAX, description="How many to skip.")]


def as_utc(moment: datetime) -> datetime:
    """A timestamp in UTC: a naive one is read as UTC (SQLite hands those back), an aware one is moved."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first representable moment
        raise ValueError("the time is out of range once converted to UTC") from None


# Every timestamp in and out is aware UTC, so the document's `format: date-time` holds for each one.
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


def bounded_object(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` when it nests at most MAX_METADATA_DEPTH deep and its JSON is at most MAX_METADATA_BYTES."""
    if nesting_depth(value, MAX_METADATA_DEPTH) > MAX_METADATA_DEPTH:
        raise ValueError(f"nests more than {MAX_METADATA_DEPTH} levels deep")
    try:
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode())
    except ValueError:
        raise ValueError("holds NaN or Infinity, which JSON cannot store") from None
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"is {size} bytes as JSON; at most {MAX_METADATA_BYTES} are kept")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(bounded_object),
                       Field(description=f"A JSON object of at most {MAX_METADATA_BYTES} bytes (compact) "
                                         f"nesting at most {MAX_METADATA_DEPTH} levels deep.")]
