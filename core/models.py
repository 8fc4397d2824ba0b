"""Domain tables (SQLAlchemy 2.0 typed mappings). The schema itself is built by Alembic migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.clock import utcnow
from core.db import Base


class Owner(Base):
    """A team or person who owns themes (product, ops, IT, ...)."""

    __tablename__ = "owners"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32), default="team")
    email: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FeedbackItem(Base):
    """One piece of feedback from one channel; the original text never leaves the system."""

    __tablename__ = "feedback_items"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_item_channel_external_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(128), index=True)
    external_id: Mapped[str] = mapped_column(String(256))
    author_pseudonym: Mapped[str | None] = mapped_column(String(64), index=True)
    text_original: Mapped[str] = mapped_column(Text)
    text_redacted: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    metadata_json: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    kind: Mapped[str | None] = mapped_column(String(32), index=True)
    sentiment: Mapped[float | None] = mapped_column(Float)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    embedding_model: Mapped[str | None] = mapped_column(String(128))
    # Hash of (author pseudonym, normalised text): the same words from the same author are one item.
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    # Hash of the normalised shown text (core/themes/text_hash.py), whoever wrote it: items with equal hashes
    # share one embedding per model, so each distinct text is embedded once.
    text_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    # Impact signals from the channel (a payload field or a lookup file), for weighting themes.
    customer_tier: Mapped[str | None] = mapped_column(String(64))
    account_value: Mapped[float | None] = mapped_column(Float)
    # When the source last edited the item: an edit older than this is a replay or a late delivery.
    source_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The HTTP request that created the item or last changed its text (X-Request-ID, core/logs.py): the worker
    # names it in its log lines, so one id follows the item from webhook to ticket. None for imports and polls.
    request_id: Mapped[str | None] = mapped_column(String(64))

    membership: Mapped[ThemeMembership | None] = relationship(back_populates="item", uselist=False)


class EmbeddingBatch(Base):
    """One batch the worker embedded: the API process derives the embedding throughput from these rows."""

    __tablename__ = "embedding_batches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(128))
    texts: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class Area(Base):
    """A group of themes (a product area, a topic); its id is stable across re-clustering."""

    __tablename__ = "areas"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(256))
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    label_locked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Theme(Base):
    """A group of items about one thing; its id is stable across re-clustering."""

    __tablename__ = "themes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(256))
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    quotes: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(32), default="new", index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("owners.id"), index=True)
    label_locked: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set when a person merged this theme into another: later clusterings send its items there too.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("themes.id"), index=True)
    centroid: Mapped[bytes | None] = mapped_column(LargeBinary)
    # How close a typical member is to the centroid: a new item must be about as close to join at once.
    radius: Mapped[float | None] = mapped_column(Float)
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id", ondelete="SET NULL"), index=True)
    # Set when a person moved the theme into its area: re-clustering keeps it there.
    area_locked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    owner: Mapped[Owner | None] = relationship()
    memberships: Mapped[list[ThemeMembership]] = relationship(back_populates="theme")
    merged_into: Mapped[Theme | None] = relationship(remote_side=[id])
    area: Mapped[Area | None] = relationship()


class ThemeMembership(Base):
    """Which theme an item belongs to, and whether a machine or a person put it there."""

    __tablename__ = "theme_memberships"
    # Each assignment pass reads the most recent adopted memberships (the provisional ones).
    __table_args__ = (Index("ix_theme_memberships_adopted_item", "adopted", "item_id"),)
    item_id: Mapped[int] = mapped_column(ForeignKey("feedback_items.id", ondelete="CASCADE"), primary_key=True)
    theme_id: Mapped[int] = mapped_column(ForeignKey("themes.id", ondelete="CASCADE"), index=True)
    # Indexed: people's placements (source "human") are read on every assignment round and re-clustering.
    source: Mapped[str] = mapped_column(String(16), default="machine", index=True)  # core.types.MembershipSource
    score: Mapped[float | None] = mapped_column(Float)
    # Adopted by its nearest theme from the waiting pool, outside the theme's radius (clustering/incremental.py):
    # the most recent of these stay candidates for a new theme, which takes them over if one emerges.
    adopted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    item: Mapped[FeedbackItem] = relationship(back_populates="membership")
    theme: Mapped[Theme] = relationship(back_populates="memberships")


class RoutingRule(Base):
    """A stored ownership rule: conditions on a theme lead to an owner and a target."""

    __tablename__ = "routing_rules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    priority: Mapped[int] = mapped_column(Integer, default=100)
    conditions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"))
    target_type: Mapped[str] = mapped_column(String(64), default="inbox")
    target_options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class Delivery(Base):
    """A theme's ticket in one target: one row per (theme, target), never duplicated."""

    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    theme_id: Mapped[int] = mapped_column(ForeignKey("themes.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("owners.id"))
    target_type: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(256), unique=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(32), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    external_ref: Mapped[str | None] = mapped_column(String(512), index=True)
    url: Mapped[str | None] = mapped_column(String(2048))
    title: Mapped[str] = mapped_column(String(512), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    delivered_volume: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    # Retry schedule: None means "due now"; set before each attempt so a crashed worker backs off too.
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The ticket's status in the tracker as last read (webhook or polling).
    external_status: Mapped[str | None] = mapped_column(String(128))
    status_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the target last created or updated the ticket: the log line of the next send names the items that
    # joined the theme since then.
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    theme: Mapped[Theme] = relationship()
    owner: Mapped[Owner | None] = relationship()


class TargetCircuit(Base):
    """A circuit breaker per target instance: open after repeated failures, tried again after a pause."""

    __tablename__ = "target_circuits"
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    opened_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


class SpikeAlert(Base):
    """One spike notification sent (or attempted) for a theme; the rate limit counts these."""

    __tablename__ = "spike_alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    theme_id: Mapped[int] = mapped_column(ForeignKey("themes.id", ondelete="CASCADE"), index=True)
    rule: Mapped[str] = mapped_column(String(128))
    score: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(32), default="sent")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class LoopReply(Base):
    """A "your feedback was acted on" reply to one thread for one theme; unique, so nobody is told twice."""

    __tablename__ = "loop_replies"
    __table_args__ = (UniqueConstraint("theme_id", "channel", "thread_ref", name="uq_loop_reply_thread"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    theme_id: Mapped[int] = mapped_column(ForeignKey("themes.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(128))
    thread_ref: Mapped[str] = mapped_column(String(512))
    state: Mapped[str] = mapped_column(String(32), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEntry(Base):
    """An append-only record of a human action (or an erasure) on the data."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Set when a person undid this change from the history; points at the "undo" entry (core/themes/undo.py).
    undone_by_id: Mapped[int | None] = mapped_column(ForeignKey("audit_log.id"))


class Channel(Base):
    """A configured instance of an intake channel type; webhooks arrive at /webhooks/{name}."""

    __tablename__ = "channels"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    plugin: Mapped[str] = mapped_column(String(128))
    secret_env: Mapped[str | None] = mapped_column(String(128))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    """An API key; only its SHA-256 is stored."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(32), default="admin")  # before 0005; scopes decide now
    # Drawn from admin, pm, intake, read (core.auth.api_keys); intake keys may be bound to channels.
    scopes: Mapped[list[str] | None] = mapped_column(JSON)
    channels: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class Setting(Base):
    """Installation-wide values kept in the database (e.g. the pseudonymisation key)."""

    __tablename__ = "installation_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class WebhookDelivery(Base):
    """A delivery id already stored for a channel: a redelivery is answered without storing anything twice."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("channel", "delivery_id", name="uq_delivery_channel_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(128))
    delivery_id: Mapped[str] = mapped_column(String(256))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ItemSighting(Base):
    """Another place the same author posted the same text: kept as a link, not counted as another item."""

    __tablename__ = "item_sightings"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_sighting_channel_external_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("feedback_items.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(128))
    external_id: Mapped[str] = mapped_column(String(256))
    url: Mapped[str | None] = mapped_column(String(2048))
    author_pseudonym: Mapped[str | None] = mapped_column(String(64), index=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ItemTombstone(Base):
    """An item deleted at its source: the row is gone, and late deliveries of it do not bring it back."""

    __tablename__ = "item_tombstones"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_tombstone_channel_external_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(128))
    external_id: Mapped[str] = mapped_column(String(256))
    deleted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ImportRun(Base):
    """Progress of one file import, so an interrupted import resumes where it stopped."""

    __tablename__ = "import_runs"
    __table_args__ = (UniqueConstraint("channel", "file_sha256", name="uq_import_channel_file"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(128))
    file_sha256: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(512))
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class User(Base):
    """A person who signs in to the workspace: a local password (argon2) or an OpenID Connect identity."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_user_oidc_identity"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-case
    name: Mapped[str] = mapped_column(String(128), default="")
    role: Mapped[str] = mapped_column(String(16), default="viewer")  # core.auth.users.ROLES
    password_hash: Mapped[str | None] = mapped_column(String(256))
    oidc_issuer: Mapped[str | None] = mapped_column(String(512))
    oidc_subject: Mapped[str | None] = mapped_column(String(256))
    # The team whose inbox a user with the "owner" role works from.
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("owners.id", ondelete="SET NULL"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    owner: Mapped[Owner | None] = relationship()


class WebSession(Base):
    """A signed-in browser: the cookie holds a random token, the database only its SHA-256, so sessions can
    be listed and revoked and a copied database holds no usable cookie."""

    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    user_agent: Mapped[str] = mapped_column(String(256), default="")

    user: Mapped[User] = relationship()


class PendingSignIn(Base):
    """An OpenID Connect authorization request in flight: its state (hashed), nonce and PKCE verifier."""

    __tablename__ = "pending_sign_ins"
    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[str] = mapped_column(String(128))
    return_to: Mapped[str] = mapped_column(String(512), default="/")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SuggestionDecision(Base):
    """A person's answer to "these look like the ones you moved": accepted items were moved, rejected ones
    must not be put in that theme by later clusterings."""

    __tablename__ = "suggestion_decisions"
    __table_args__ = (UniqueConstraint("item_id", "theme_id", name="uq_suggestion_item_theme"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("feedback_items.id", ondelete="CASCADE"), index=True)
    theme_id: Mapped[int] = mapped_column(ForeignKey("themes.id", ondelete="CASCADE"), index=True)
    accepted: Mapped[bool] = mapped_column(Boolean)
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
