"""Plain objects passed between the core and plugins: what a hook receives and returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class ItemDraft:
    """A feedback item on its way in: intake plugins build it, enrichment plugins fill it in."""

    text: str
    channel: str = "api"
    external_id: str | None = None
    author: str | None = None
    url: str | None = None
    created_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # A partial draft knows only part of its item (e.g. a forum topic's title without its first post):
    # it creates the item when absent, otherwise only its metadata is merged in.
    partial: bool = False
    # Impact signals (customer tier, account value); the core also fills them from channel options.
    customer_tier: str | None = None
    account_value: float | None = None
    # Filled in by enrichment plugins.
    redacted_text: str | None = None
    sentiment: float | None = None
    kind: str | None = None


@dataclass(frozen=True)
class WebhookRequest:
    """One delivery to ``POST /webhooks/{channel}``: raw body, lower-cased headers, the channel's config."""

    channel_name: str
    headers: Mapping[str, str]
    body: bytes
    options: Mapping[str, Any]
    secret: str | None


@dataclass
class IntakeResult:
    """What an intake plugin made of a delivery: items to store, or the reason it was ignored."""

    items: list[ItemDraft] = field(default_factory=list)
    ignored: str | None = None
    delivery_id: str | None = None
    # External ids deleted at the source (removed from themes) and restored there (accepted again).
    deleted_ids: list[str] = field(default_factory=list)
    restored_ids: list[str] = field(default_factory=list)


class WebhookRejected(Exception):
    """Raised by an intake plugin to refuse a delivery with an HTTP status and a message."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass(frozen=True)
class ChannelType:
    """An intake channel type offered by a plugin (``register_channel_types``)."""

    name: str
    description: str
    handle_webhook: Callable[[WebhookRequest], IntakeResult]


@dataclass(frozen=True)
class ThemeView:
    """A read-only snapshot of a theme and its metrics, as plugins see it."""

    id: int
    label: str
    keywords: list[str]
    status: str
    volume: int
    share_of_voice: float
    mean_sentiment: float
    kinds: Mapping[str, int]
    channels: Mapping[str, int]
    quotes: list[str]
    owner: str | None = None
    # Filled in by routing (core.themes.signals) when it has the data: recent growth against the theme's own
    # baseline, a spike score, and counts of item metadata values (e.g. {"tier": {"enterprise": 3}}).
    trend: float | None = None
    anomaly_score: float | None = None
    metadata_counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def dominant_kind(self) -> str | None:
        return max(self.kinds, key=lambda k: self.kinds[k]) if self.kinds else None


@dataclass(frozen=True)
class OwnerChoice:
    """The answer of ``choose_owner``: who owns a theme, where to send it, and which rule decided."""

    owner: str
    target_type: str = "inbox"
    target_options: Mapping[str, Any] = field(default_factory=dict)
    rule: str = ""


@dataclass(frozen=True)
class DeliveryRequest:
    """What a routing target is asked to deliver: a theme to an owner, new or as an update."""

    theme: ThemeView
    owner: str
    options: Mapping[str, Any]
    title: str
    body: str
    idempotency_key: str
    existing_ref: str | None = None
    # Set for a growth update: stable per (ticket, volume), so a target can skip a comment it already made.
    update_key: str | None = None
    # "ticket" (create or update the theme's ticket) or "spike" (an urgent notice about a sudden burst).
    event: str = "ticket"


@dataclass(frozen=True)
class DeliveryResult:
    """What a routing target answers: the ticket it created or updated."""

    external_ref: str
    url: str | None = None


@dataclass(frozen=True)
class TargetType:
    """A routing target type offered by a plugin (``register_target_types``)."""

    name: str
    description: str
    deliver: Callable[[DeliveryRequest], DeliveryResult]
    # Optional: the ticket's current status in the tracker, given the target options and the ticket ref.
    read_status: Callable[[Mapping[str, Any], str], str | None] | None = None


@dataclass(frozen=True)
class ReplyRequest:
    """Closing the loop: a message for the people behind one thread (a forum topic, a GitHub issue)."""

    channel_name: str
    channel_type: str
    options: Mapping[str, Any]
    secret: str | None
    # The thread as the channel knows it (e.g. a Discourse topic id), and an item of it for context.
    thread_id: str
    url: str | None
    metadata: Mapping[str, Any]
    text: str
