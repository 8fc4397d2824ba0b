"""Request and response bodies of the public API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.inputs import JsonObject, RowId, UtcDatetime


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=20_000, description="The feedback itself.")
    # A slug: names that reach the dashboard and the audit log are plain words, never markup.
    channel: str = Field(default="api", pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$",
                         description="An API channel (a slug); webhook channels are refused.")
    external_id: str | None = Field(default=None, max_length=256,
                                    description="Stable id in the source; re-sending it adds nothing.")
    author: str | None = Field(default=None, max_length=256, description="Stored only as a pseudonym.")
    url: str | None = Field(default=None, max_length=2048)
    created_at: UtcDatetime | None = None
    metadata: JsonObject = Field(default_factory=dict)


class FeedbackBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[FeedbackCreate] = Field(min_length=1, max_length=1000)


class IngestResult(BaseModel):
    created: int
    updated: int
    duplicates: int
    ids: list[int]


class FeedbackPublic(BaseModel):
    id: int
    channel: str
    external_id: str
    text: str = Field(description="Redacted text: personal data never leaves the system.")
    author: str | None = Field(description="Pseudonym")
    url: str | None
    created_at: UtcDatetime
    kind: str | None
    sentiment: float | None
    theme_id: int | None
    metadata: dict[str, Any]


class FeedbackPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[FeedbackPublic]


class ThemePublic(BaseModel):
    id: int
    label: str
    keywords: list[str]
    status: str
    owner: str | None
    volume: int
    share_of_voice: float
    mean_sentiment: float
    kinds: dict[str, int]
    channels: dict[str, int]
    quotes: list[str]
    area_id: int | None = Field(default=None, description="The theme's area (GET /api/v1/areas); null before "
                                                            "the first clustering that grouped it.")
    area_label: str | None = None


class AreaPublic(BaseModel):
    id: int
    label: str
    keywords: list[str]
    themes: int = Field(description="How many active themes the area holds.")
    volume: int = Field(description="Items in the area's active themes.")
    share_of_voice: float = Field(description="The area's items as a share of all items.")
    trend: float = Field(description="Items in the last hour against what the week before predicts "
                                     "(+1 smoothed; 1.0 is steady), over the area's items together.")


class ThemeDetail(ThemePublic):
    items: list[FeedbackPublic]


class ThemeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(default=None, min_length=1, max_length=256)
    status: str | None = Field(default=None, max_length=32, description="A theme status: new, triaged, planned, "
                                                                         "in_progress, done, declined, ignored.")
    owner: str | None = Field(default=None, min_length=1, max_length=128)
    area_id: RowId | None = Field(default=None, description="Move the theme into this area (GET /api/v1/areas); "
                                                            "later re-clusterings keep it there.")


class ThemeMerge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    into: RowId = Field(description="The theme that absorbs this one.")


class ThemeSplit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_ids: list[RowId] = Field(min_length=1, max_length=10_000)
    label: str = Field(min_length=1, max_length=256)


class ItemPlacement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    theme_id: RowId
