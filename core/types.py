"""Plain objects passed between the core and plugins: what a hook receives and returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from core.errors import FeedbackloopError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from core.settings import Settings


class ThemeStatus(StrEnum):
    """Where a theme stands; people set the first six, the clustering the last two."""

    NEW = "new"
    TRIAGED = "triaged"
    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    DECLINED = "declined"
    IGNORED = "ignored"
    # No longer found by the clustering (kept, so its tickets and history still point somewhere).
    ARCHIVED = "archived"
    # A person merged it into another theme.
    MERGED = "merged"


# Themes routing sends to owners, themes whose people hear back, themes nobody sees in lists.
ROUTABLE_STATUSES = (ThemeStatus.NEW, ThemeStatus.TRIAGED, ThemeStatus.PLANNED, ThemeStatus.IN_PROGRESS)
CLOSED_STATUSES = (ThemeStatus.DONE, ThemeStatus.DECLINED)
INACTIVE_STATUSES = (ThemeStatus.ARCHIVED, ThemeStatus.MERGED)


class MembershipSource(StrEnum):
    """Who put an item in its theme: the clustering (it may move it again) or a person (it never does)."""

    MACHINE = "machine"
    HUMAN = "human"


@dataclass
class ItemDraft:
    """A feedback item on its way in: intake plugins build it, enrichment plugins fill it in."""

    text: str
    channel: str = "api"
    external_id: str | None = None
    author: str | None = None
    url: str | None = None
    created_at: datetime | None = None
    # When the source last edited what it sent (its own clock): an edit older than the stored version
    # is ignored, so a replayed or late delivery cannot bring back an old text.
    updated_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Metadata keys this draft's source may change on an item already stored (a closed issue's state, new
    # tags); every other key is only added when the item lacks it, so ids, the instance and thread
    # references never change once stored, whoever re-sends the item.
    editable_metadata: frozenset[str] = frozenset()
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
    # Set by the core, not by plugins: the HTTP request that brought the item (core/logs.py), kept on it.
    request_id: str | None = None


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
    # What the sender expects back in place of feedbackloop's own answer (Slack's url_verification
    # challenge, the text a slash command shows); sent, like any answer, only once the delivery is committed.
    answer: WebhookAnswer | None = None


@dataclass(frozen=True)
class WebhookAnswer:
    """A response body a channel's sender requires (its protocol decides it, not feedbackloop)."""

    body: Mapping[str, Any] | str
    status_code: int = 200


class WebhookRejected(FeedbackloopError):
    """Raised by an intake plugin to refuse a delivery with an HTTP status and a message."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message, status_code=status_code)


@dataclass(frozen=True)
class StoredItem:
    """A stored item as a channel's reply capability sees it: where it came from, and what it said of itself."""

    channel: str
    external_id: str
    url: str | None
    metadata: Mapping[str, Any]


@dataclass(frozen=True)
class ThreadReplies:
    """A channel type's optional capability to answer in the threads its items came from (closing the loop).

    ``thread_of`` names an item's thread (a forum topic, an issue) or None when it has none that can be
    answered; ``opener_id`` is the external id of the item that opened a thread, when the channel knows it
    (a reply in a thread whose opener was erased would be writing to that person); ``post`` posts the
    request's text in the thread and returns a reference to the reply, raising on failure.
    """

    thread_of: Callable[[StoredItem], str | None]
    post: Callable[[ReplyRequest], str]
    opener_id: Callable[[str], str | None] = field(default=lambda _thread: None)


@dataclass(frozen=True)
class ChannelType:
    """An intake channel type offered by a plugin (``register_channel_types``)."""

    name: str
    description: str
    handle_webhook: Callable[[WebhookRequest], IntakeResult]
    # Optional: answering in the channel's threads, used to tell people what became of their feedback.
    replies: ThreadReplies | None = None
    # Optional: fetching new posts from a source that sends no webhooks (feeds, app stores, Reddit).
    poll: ChannelPoller | None = None
    # The channel options the type reads, each with a one-line description. ``channels add`` refuses any
    # other (a mistyped option would otherwise be ignored without a word) and docs/plugins.md lists them.
    # Left empty, nothing is checked: types written before options were declared keep working.
    options: Mapping[str, str] = field(default_factory=dict)


def reject_webhooks(request: WebhookRequest) -> IntakeResult:
    """``handle_webhook`` for a channel type that is only polled."""
    raise WebhookRejected(404, f"channel {request.channel_name!r} is polled; it takes no webhooks")


@dataclass(frozen=True)
class PollRequest:
    """One fetch for a polled channel: its options, secret and the cursor stored after the last page."""

    channel_name: str
    options: Mapping[str, Any]
    secret: str | None
    cursor: Mapping[str, Any]
    settings: Settings | None = field(default=None, repr=False, compare=False)


@dataclass
class PollPage:
    """What one fetch brought: items, and the cursor to store with them in the same transaction."""

    items: list[ItemDraft] = field(default_factory=list)
    cursor: dict[str, Any] = field(default_factory=dict)
    # True when the source has another page ready now (pagination); the poller fetches it at once.
    more: bool = False
    deleted_ids: list[str] = field(default_factory=list)


class PollThrottled(FeedbackloopError):
    """Raised by a poller when the source says to wait (HTTP 429 with ``Retry-After``, a rate-limit header)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message, status_code=429)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class ChannelPoller:
    """A channel type's optional capability to fetch new posts; ``interval_s`` is its default pace."""

    fetch: Callable[[PollRequest], PollPage]
    interval_s: float = 300.0
    # Optional: checks a channel's options when it is added (a feed without ``url``), raising
    # ``core.errors.InvalidInput`` with a message that names the option.
    check_options: Callable[[Mapping[str, Any]], None] | None = None


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
    # The theme's area (a product area, a topic): None before the first clustering that grouped it.
    area_id: int | None = None
    area_label: str | None = None

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
    # The theme's page in the workspace, also the body's last line; a target may show it as a link.
    link: str | None = None
    # "ticket" (create or update the theme's ticket) or "spike" (an urgent notice about a sudden burst).
    event: str = "ticket"
    # The installation's settings, for the outbound and secret allow-lists (core.outbound, core.secrets);
    # None (a plugin's own tests) means the process's settings.
    settings: Settings | None = field(default=None, repr=False, compare=False)


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
    # Optional: the tracker's own webhook (``POST /trackers/{name}/webhook``), verified and read by the plugin.
    status_webhook: Callable[[WebhookRequest], TrackerStatusEvent] | None = None


@dataclass(frozen=True)
class TrackerStatusEvent:
    """What a tracker's webhook said: the ticket known by any of ``refs`` now has ``status``, or the event
    says nothing about a status (``ignored`` gives the reason)."""

    refs: tuple[str, ...] = ()
    status: str | None = None
    ignored: str | None = None


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
    # As in DeliveryRequest. Where a reply goes comes from the channel's options only: ``url`` and
    # ``metadata`` describe the thread, they never name a host to send credentials to.
    settings: Settings | None = field(default=None, repr=False, compare=False)


class Embedder(Protocol):
    """What an embedder factory (``register_embedders``) returns: L2-normalised float32 rows, one per text."""

    name: str

    def embed(self, texts: Sequence[str],
              progress: Callable[[int], None] | None = None) -> npt.NDArray[np.float32]: ...
