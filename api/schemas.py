"""Request and response bodies of the public API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=20_000, description="The feedback itself.")
    channel: str = Field(default="api", min_length=1, max_length=128)
    external_id: str | None = Field(default=None, max_length=256,
                                    description="Stable id in the source; re-sending it adds nothing.")
    author: str | None = Field(default=None, max_length=256, description="Stored only as a pseudonym.")
    url: str | None = Field(default=None, max_length=2048)
    created_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


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
    created_at: datetime
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


class ThemeDetail(ThemePublic):
    items: list[FeedbackPublic]


class ThemeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(default=None, min_length=1, max_length=256)
    status: str | None = None
    owner: str | None = Field(default=None, min_length=1, max_length=128)


class ThemeMerge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    into: int = Field(description="The theme that absorbs this one.")


class ThemeSplit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_ids: list[int] = Field(min_length=1, max_length=10_000)
    label: str = Field(min_length=1, max_length=256)


class ItemPlacement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    theme_id: int
