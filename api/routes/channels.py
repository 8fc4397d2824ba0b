"""Admin API for channel instances: the same as ``feedbackloop channels add/list/remove``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field

from api.deps import AdminKey, IntakeDep, LoopDep, SessionDep, commit_or_503
from api.errors import API_ERRORS, error_responses
from api.inputs import JsonObject, UtcDatetime
from core.intake.channels import add_channel, list_channels, remove_channel
from core.models import Channel

router = APIRouter(prefix="/api/v1/channels", tags=["channels"], responses=error_responses(*API_ERRORS))


class ChannelCreate(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="Lower-case letters, digits, '-' or '_'")
    plugin: str = Field(min_length=1, max_length=128, description="Channel type, e.g. discourse, github, webhook")
    secret_env: str | None = Field(default=None, description="Environment variable holding the secret")
    options: JsonObject = Field(default_factory=dict)


class ChannelPublic(BaseModel):
    name: str
    plugin: str
    secret_env: str | None  # the variable's name only: secrets never leave the server
    options: dict[str, Any]
    webhook_url: str
    created_at: UtcDatetime


def public_channel(channel: Channel, public_url: str) -> ChannelPublic:
    return ChannelPublic(name=channel.name, plugin=channel.plugin, secret_env=channel.secret_env,
                         options=channel.options or {}, created_at=channel.created_at,
                         webhook_url=f"{public_url.rstrip('/')}/webhooks/{channel.name}")


@router.get("", operation_id="list_channels")
def get_channels(loop: LoopDep, session: SessionDep, _admin: AdminKey) -> list[ChannelPublic]:
    """Every configured channel."""
    return [public_channel(channel, loop.settings.public_url) for channel in list_channels(session)]


@router.post("", status_code=status.HTTP_201_CREATED, operation_id="add_channel",
             responses=error_responses(409, 503))
def post_channel(body: ChannelCreate, intake: IntakeDep, loop: LoopDep, session: SessionDep,
                 admin: AdminKey) -> ChannelPublic:
    """Add a channel; its deliveries go to ``POST /webhooks/{name}``."""
    channel = add_channel(loop, session, body.name, body.plugin, body.secret_env, body.options, actor=admin.actor)
    intake.forget_channels()
    return public_channel(channel, loop.settings.public_url)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, operation_id="remove_channel",
               responses=error_responses(404, 503))
def delete_channel(name: str, intake: IntakeDep, session: SessionDep, admin: AdminKey) -> Response:
    """Remove a channel: intake stops, its items stay."""
    remove_channel(session, name, actor=admin.actor)
    commit_or_503(session)  # committed before the cache is dropped, so the next delivery sees the removal
    intake.forget_channels()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
