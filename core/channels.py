"""Channel instances (a named, configured intake plugin) and webhook dispatch to them."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.intake import IngestReport, ingest
from core.loop import FeedbackLoop
from core.models import Channel
from core.types import WebhookRejected, WebhookRequest

CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_WEBHOOK_BYTES = 1024 * 1024


class ChannelError(ValueError):
    """A channel that cannot be added or found; ``status_code`` is the HTTP answer for the API."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


def add_channel(loop: FeedbackLoop, session: Session, name: str, plugin: str, secret_env: str | None = None,
                options: Mapping[str, Any] | None = None) -> Channel:
    if not CHANNEL_NAME.match(name):
        raise ChannelError(f"channel name {name!r} must be lower-case letters, digits, '-' or '_' (max 64)")
    if plugin not in loop.channel_types:
        raise ChannelError(f"no intake plugin provides channel type {plugin!r}; "
                           f"installed: {sorted(loop.channel_types)}")
    if session.scalar(select(Channel).where(Channel.name == name)) is not None:
        raise ChannelError(f"channel {name!r} already exists", status_code=409)
    channel = Channel(name=name, plugin=plugin, secret_env=secret_env, options=dict(options or {}))
    session.add(channel)
    session.flush()
    return channel


def remove_channel(session: Session, name: str) -> None:
    channel = session.scalar(select(Channel).where(Channel.name == name))
    if channel is None:
        raise ChannelError(f"no channel named {name!r}", status_code=404)
    session.delete(channel)  # its items stay: removing a channel stops intake, it erases nothing


def list_channels(session: Session) -> list[Channel]:
    return list(session.scalars(select(Channel).order_by(Channel.name)))


@dataclass(frozen=True)
class WebhookOutcome:
    ignored: str | None
    report: IngestReport | None


def receive_webhook(loop: FeedbackLoop, channel_name: str, headers: Mapping[str, str], body: bytes) -> WebhookOutcome:
    """Verify and parse a delivery with the channel's plugin, then store it; returns once it is committed."""
    if len(body) > MAX_WEBHOOK_BYTES:
        raise WebhookRejected(413, f"body is {len(body)} bytes; the limit is {MAX_WEBHOOK_BYTES}")
    with loop.session() as session:
        channel = session.scalar(select(Channel).where(Channel.name == channel_name))
        if channel is None:
            raise WebhookRejected(404, f"no channel named {channel_name!r}")
        channel_type = loop.channel_types.get(channel.plugin)
        if channel_type is None:
            raise WebhookRejected(503, f"channel {channel_name!r} needs plugin {channel.plugin!r}, "
                                       "which is not installed")
        secret = os.environ.get(channel.secret_env) if channel.secret_env else None
        request = WebhookRequest(channel_name=channel.name, headers={k.lower(): v for k, v in headers.items()},
                                 body=body, options=dict(channel.options or {}), secret=secret)
        result = channel_type.handle_webhook(request)
        if result.ignored is not None:
            return WebhookOutcome(ignored=result.ignored, report=None)
        for item in result.items:
            item.channel = channel.name
        report = ingest(loop, session, result.items)
    return WebhookOutcome(ignored=None, report=report)
