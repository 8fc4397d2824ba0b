"""Channel instances (a named, configured intake plugin) and webhook dispatch to them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.audit import cli_actor, record
from core.community.decline_options import VITALITY_OPTIONS, decline_settings
from core.errors import FeedbackloopError
from core.intake.impact import IMPACT_OPTIONS, ImpactConfigError, apply_impact, check_options
from core.intake.ingest import IngestReport, delete_items, ingest, restore_items, validate
from core.intake.poll_options import check_poll_options
from core.loop import FeedbackLoop
from core.models import Channel, WebhookDelivery
from core.outbound import OutboundRefused, check_destination_options
from core.secrets import SecretEnvRefused, check_secret_env, named_secret
from core.types import ChannelType, IntakeResult, WebhookAnswer, WebhookRejected, WebhookRequest

CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_WEBHOOK_BYTES = 1024 * 1024
# Items, deletions and restorations one delivery may carry, like the API's batch limit: 1 MiB of tiny
# records would otherwise be tens of thousands of rows in one transaction that every sender waits for.
MAX_DELIVERY_ITEMS = 1000
# Two deliveries of the same post racing each other: the loser's insert fails on the unique key and
# is retried, and then finds the winner's row.
STORE_ATTEMPTS = 3


class ChannelError(FeedbackloopError):
    """A channel that cannot be added or found."""


# Options any channel takes besides its type's own; a polled type also takes its pace.
COMMON_OPTIONS = {**IMPACT_OPTIONS, **VITALITY_OPTIONS,
                  "internal": "true: the items come from the company's own people"}
POLL_OPTIONS = {"interval_s": "seconds between two polls (the type's default otherwise)"}


def known_options(channel_type: ChannelType) -> dict[str, str]:
    """Every option a channel of this type takes, with its description; empty when the type declares none."""
    if not channel_type.options:
        return {}
    return {**COMMON_OPTIONS, **(POLL_OPTIONS if channel_type.poll else {}), **channel_type.options}


def check_known_options(channel_type: ChannelType, options: Mapping[str, Any]) -> None:
    known = known_options(channel_type)
    unknown = sorted(set(options) - set(known)) if known else []
    if unknown:
        raise ChannelError(f"channel type {channel_type.name!r} takes no option {', '.join(map(repr, unknown))}; "
                           f"its options: {', '.join(sorted(known))}")


def add_channel(loop: FeedbackLoop, session: Session, name: str, plugin: str, secret_env: str | None = None,
                options: Mapping[str, Any] | None = None, actor: str | None = None) -> Channel:
    """Configure a channel; audited under ``actor`` (None: the operating-system user, as the CLI is)."""
    if not CHANNEL_NAME.match(name):
        raise ChannelError(f"channel name {name!r} must be lower-case letters, digits, '-' or '_' (max 64)")
    if plugin not in loop.channel_types:
        raise ChannelError(f"no intake plugin provides channel type {plugin!r}; "
                           f"installed: {sorted(loop.channel_types)}")
    if secret_env is not None and not ENV_NAME.match(secret_env):
        raise ChannelError(f"--secret-env {secret_env!r} is not an environment variable name")
    check_known_options(loop.channel_types[plugin], options or {})
    check_poll_options(loop.channel_types[plugin], options or {})  # a feed without a url, a bad pace
    decline_settings(options or {})  # the decline alert's owner and weeks
    try:
        check_options(options or {})
    except ImpactConfigError as error:
        raise ChannelError(str(error)) from error
    try:  # its secret, and the credentials and URLs of its replies, checked now rather than at the first delivery
        if secret_env is not None:
            check_secret_env(secret_env, loop.settings, f"channel {name!r}: --secret-env")
        check_destination_options(options or {}, loop.settings, f"channel {name!r}")
    except (SecretEnvRefused, OutboundRefused) as error:
        raise ChannelError(error.message, status_code=422) from error
    if session.scalar(select(Channel).where(Channel.name == name)) is not None:
        raise ChannelError(f"channel {name!r} already exists", status_code=409)
    channel = Channel(name=name, plugin=plugin, secret_env=secret_env, options=dict(options or {}))
    session.add(channel)
    session.flush()
    record(session, actor or cli_actor(), "add_channel", "channel", name,
           {"plugin": plugin, "secret_env": secret_env, "options": dict(options or {})})
    return channel


def remove_channel(session: Session, name: str, actor: str | None = None) -> None:
    channel = session.scalar(select(Channel).where(Channel.name == name))
    if channel is None:
        raise ChannelError(f"no channel named {name!r}", status_code=404)
    session.delete(channel)  # its items stay: removing a channel stops intake, it erases nothing
    record(session, actor or cli_actor(), "remove_channel", "channel", name, {"plugin": channel.plugin})


def list_channels(session: Session) -> list[Channel]:
    return list(session.scalars(select(Channel).order_by(Channel.name)))


@dataclass(frozen=True)
class WebhookOutcome:
    ignored: str | None
    report: IngestReport | None
    redelivery: bool = False
    # The body the sender's protocol requires instead of feedbackloop's own (IntakeResult.answer).
    answer: WebhookAnswer | None = None


def with_answer(outcome: WebhookOutcome, result: IntakeResult) -> WebhookOutcome:
    """The outcome carrying the answer the plugin asked for, if any (stored, redelivered or ignored alike)."""
    return outcome if result.answer is None else replace(outcome, answer=result.answer)


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    plugin: str
    secret_env: str | None
    options: dict[str, Any]


def channel_config(loop: FeedbackLoop, channel_name: str) -> ChannelConfig:
    with loop.session() as session:
        channel = session.scalar(select(Channel).where(Channel.name == channel_name))
        if channel is None:
            raise WebhookRejected(404, f"no channel named {channel_name!r}")
        return ChannelConfig(channel.name, channel.plugin, channel.secret_env, dict(channel.options or {}))


def prepare_delivery(loop: FeedbackLoop, config: ChannelConfig, headers: Mapping[str, str],
                     body: bytes, request_id: str | None = None) -> IntakeResult:
    """Everything before storage: size, plugin, secret, signature and parsing, impact; raises WebhookRejected.

    ``request_id`` (the HTTP request's, core/logs.py) is kept on the items the delivery creates or edits."""
    if len(body) > MAX_WEBHOOK_BYTES:
        raise WebhookRejected(413, f"body is {len(body)} bytes; the limit is {MAX_WEBHOOK_BYTES}")
    channel_type = loop.channel_types.get(config.plugin)
    if channel_type is None:
        raise WebhookRejected(503, f"channel {config.name!r} needs plugin {config.plugin!r}, which is not installed")
    secret = None
    if config.secret_env:
        try:
            secret = named_secret(config.secret_env, loop.settings, f"channel {config.name!r}")
        except SecretEnvRefused as error:  # configured before the allow-list, or the allow-list changed since
            raise WebhookRejected(503, error.message) from error
        if not secret:  # the operator's mistake, not the sender's: 503 makes the sender retry later
            raise WebhookRejected(503, f"channel {config.name!r} reads its secret from ${config.secret_env}, "
                                       "which is not set")
    request = WebhookRequest(channel_name=config.name, headers={k.lower(): v for k, v in headers.items()},
                             body=body, options=config.options, secret=secret)
    result = channel_type.handle_webhook(request)
    if result.ignored is not None:
        return result
    carried = len(result.items) + len(result.deleted_ids) + len(result.restored_ids)
    if carried > MAX_DELIVERY_ITEMS:
        raise WebhookRejected(413, f"the delivery carries {carried} items and deletions; the limit is "
                                   f"{MAX_DELIVERY_ITEMS} per delivery (send them in several)")
    internal = str(config.options.get("internal", "")).strip().lower() in {"1", "true", "yes", "on"}
    for item in result.items:
        item.channel = config.name
        item.request_id = request_id
        if internal:  # the channel option marks every item as staff feedback, whatever the plugin said
            item.metadata["internal"] = True
    validate(result.items)
    try:
        apply_impact(result.items, config.options)
    except ImpactConfigError as error:
        raise WebhookRejected(503, f"channel {config.name!r}: {error}") from error
    return result


def store_with_retries(loop: FeedbackLoop, channel: str, result: IntakeResult) -> WebhookOutcome:
    """One delivery in its own transaction, retried when a concurrent writer won a unique-key race."""
    for attempt in range(1, STORE_ATTEMPTS + 1):
        try:
            with loop.session() as session:
                return store_delivery(loop, session, channel, result)
        except IntegrityError:
            if attempt == STORE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def receive_webhook(loop: FeedbackLoop, channel_name: str, headers: Mapping[str, str], body: bytes,
                    request_id: str | None = None) -> WebhookOutcome:
    """Verify and parse a delivery with the channel's plugin, then store it; returns once it is committed.

    The server batches deliveries (``core.intake.group_commit``); this is the same work, one at a time.
    """
    if len(body) > MAX_WEBHOOK_BYTES:
        raise WebhookRejected(413, f"body is {len(body)} bytes; the limit is {MAX_WEBHOOK_BYTES}")
    config = channel_config(loop, channel_name)
    result = prepare_delivery(loop, config, headers, body, request_id)
    if result.ignored is not None:
        return WebhookOutcome(ignored=result.ignored, report=None, answer=result.answer)
    return with_answer(store_with_retries(loop, config.name, result), result)


def store_delivery(loop: FeedbackLoop, session: Session, channel: str, result: IntakeResult) -> WebhookOutcome:
    """Everything one delivery carries, in the caller's transaction, recorded under its delivery id."""
    if result.delivery_id and session.scalar(
            select(WebhookDelivery.id).where(WebhookDelivery.channel == channel,
                                             WebhookDelivery.delivery_id == result.delivery_id)) is not None:
        return WebhookOutcome(ignored=None, report=IngestReport(duplicates=len(result.items)), redelivery=True)
    restore_items(session, channel, result.restored_ids)
    report = ingest(loop, session, result.items) if result.items else IngestReport()
    report.deleted = delete_items(session, channel, result.deleted_ids)
    if result.delivery_id:
        session.add(WebhookDelivery(channel=channel, delivery_id=result.delivery_id[:256]))
        session.flush()
    return WebhookOutcome(ignored=None, report=report)
