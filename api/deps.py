"""Request dependencies: the FeedbackLoop, a database session, the webhook intake, and API-key checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from core.auth.api_keys import role_for_key
from core.errors import Forbidden, Unauthorized
from core.intake.group_commit import WebhookIntake
from core.loop import FeedbackLoop


def get_loop(request: Request) -> FeedbackLoop:
    loop: FeedbackLoop = request.app.state.loop
    return loop


LoopDep = Annotated[FeedbackLoop, Depends(get_loop)]


async def get_webhook_intake(request: Request) -> WebhookIntake:
    """The intake ``create_app`` built; async, so FastAPI does not hop to a worker thread for it."""
    intake: WebhookIntake = request.app.state.webhook_intake
    return intake


IntakeDep = Annotated[WebhookIntake, Depends(get_webhook_intake)]


def get_session(loop: LoopDep) -> Iterator[Session]:
    with loop.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


def require_key(loop: LoopDep, session: SessionDep,
                credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    """The caller's role; 401 when the key is missing or wrong."""
    key = credentials.credentials if credentials is not None else None
    role = role_for_key(session, loop.settings, key)
    if role is None:
        raise Unauthorized("missing or invalid API key; send 'Authorization: Bearer <key>'",
                           headers={"WWW-Authenticate": "Bearer"})
    return role


RoleDep = Annotated[str, Depends(require_key)]


def require_admin(role: RoleDep) -> str:
    """The caller's role, when it is admin; 403 for every other key."""
    if role != "admin":
        raise Forbidden("this needs an admin key")
    return role


AdminDep = Annotated[str, Depends(require_admin)]
