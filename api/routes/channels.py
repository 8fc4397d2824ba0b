"""Admin API for channel instances: the same as ``feedbackloop channels add/list/remove``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field

from api.deps import AdminDep, IntakeDep, LoopDep, SessionDep
from core.intake.channels import add_channel, list_channels, remove_channel
from core.models import Channel

router = APIRouter(prefix="/api/v1/channels", tags=["channels"])


class ChannelCreate(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="Lower-case letters, digits, '-' or '_'")
    plugin: str = Field(min_length=1, max_length=128, description="Channel type, e.g. discourse, github, webhook")
    secret_env: str | None = Field(default=None, description="Environment variable holding the secret")
    options: dict[str, Any] = Field(default_factory=dict)


class ChannelPublic(BaseModel):
    name: str
    plugin: str
    secret_env: str | None  # the variable's name only: secrets never leave the server
    options: dict[str, Any]
    webhook_url: str
    created_at: datetime


def public_channel(channel: Channel, public_url: str) -> ChannelPublic:
    return ChannelPublic(name=channel.name, plugin=channel.plugin, secret_env=channel.secret_env,
                         options=channel.options or {}, created_at=channel.created_at,
                         webhook_url=f"{public_url.rstrip('/')}/webhooks/{channel.name}")


@router.get("", operation_id="list_channels")
def get_channels(loop: LoopDep, session: SessionDep, _admin: AdminDep) -> list[ChannelPublic]:
    """Every configured channel."""
    return [public_channel(channel, loop.settings.public_url) for channel in list_channels(session)]


@router.post("", status_code=status.HTTP_201_CREATED, operation_id="add_channel")
def post_channel(body: ChannelCreate, intake: IntakeDep, loop: LoopDep, session: SessionDep,
                 _admin: AdminDep) -> ChannelPublic:
    """Add a channel; its deliveries go to ``POST /webhooks/{name}``."""
    channel = add_channel(loop, session, body.name, body.plugin, body.secret_env, body.options)
    intake.forget_channels()
    return public_channel(channel, loop.settings.public_url)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, operation_id="remove_channel")
def delete_channel(name: str, intake: IntakeDep, session: SessionDep, _admin: AdminDep) -> Response:
    """Remove a channel: intake stops, its items stay."""
    remove_channel(session, name)
    session.commit()  # committed before the cache is dropped, so the next delivery sees the removal
    intake.forget_channels()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
