"""Which channels a write from outside the webhooks may touch.

A webhook channel's items come from its signed webhook only: a re-sent item with the same channel and
external id would otherwise rewrite what the source said (its text, metadata and thread). So the API
(and a file import) never writes to a configured webhook channel, nor to one that has received webhook
deliveries and was removed since (its items stay). API channel names are slugs, and an intake key bound
to channels writes to those only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import Forbidden, InvalidInput
from core.intake.ingest import IngestReport, ingest
from core.loop import FeedbackLoop
from core.models import Channel, WebhookDelivery
from core.types import ItemDraft

# Attempts at one request's transaction when a concurrent writer wins a unique-key race (as webhooks do).
STORE_ATTEMPTS = 3
API_CHANNEL = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class ChannelNotWritable(Forbidden):
    """A channel this writer may not write to: a webhook channel, or one outside a key's bound channels."""


def is_webhook_channel(session: Session, name: str) -> bool:
    """A configured webhook channel, or one that received webhook deliveries before it was removed."""
    if session.scalar(select(Channel.id).where(Channel.name == name)) is not None:
        return True
    return session.scalar(select(WebhookDelivery.id).where(WebhookDelivery.channel == name).limit(1)) is not None


def refuse_webhook_channels(session: Session, names: Iterable[str], writer: str) -> None:
    """ChannelNotWritable (403) when any of ``names`` is a webhook channel; ``writer`` says who was refused."""
    for name in sorted(set(names)):
        if is_webhook_channel(session, name):
            raise ChannelNotWritable(f"channel {name!r} is a webhook channel: its items come only from its signed "
                                     f"webhook, {writer} cannot write to it; use another channel name")


def check_api_channels(session: Session, names: Iterable[str], allowed: frozenset[str] | None) -> None:
    """Every name a slug (422), inside ``allowed`` when the key is bound (403), and no webhook channel (403)."""
    distinct = sorted(set(names))
    for name in distinct:
        if not API_CHANNEL.match(name):
            raise InvalidInput(f"channel {name[:80]!r} must be a slug: lower-case letters, digits, '.', '-' "
                               "or '_', at most 64 characters")
    if allowed is not None:
        outside = [name for name in distinct if name not in allowed]
        if outside:
            raise ChannelNotWritable(f"this key may post to {', '.join(sorted(allowed))} only, "
                                     f"not to {outside[0]!r}")
    refuse_webhook_channels(session, distinct, "an API key")


def ingest_from_api(loop: FeedbackLoop, session: Session, drafts: Sequence[ItemDraft],
                    allowed: frozenset[str] | None) -> IngestReport:
    """Store drafts sent through the API, after the channel checks above.

    A re-send racing its original (two requests carrying one new item) loses the unique-key race on
    ``(channel, external_id)``: the request's work is rolled back and done again, and then finds the
    winner's row, so the loser is answered as a duplicate instead of a 500. The session holds nothing
    else of this request's yet, which is what makes the whole-transaction rollback safe.
    """
    check_api_channels(session, (draft.channel for draft in drafts), allowed)
    for attempt in range(1, STORE_ATTEMPTS + 1):
        try:
            return ingest(loop, session, drafts)
        except IntegrityError:
            session.rollback()
            if attempt == STORE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")
