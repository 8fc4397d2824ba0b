"""Request dependencies: the FeedbackLoop, a database session, the webhook intake, and API-key checks."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlalchemy.orm import Session

from api.auth_middleware import CALLER_STATE, caller_for
from core.auth.api_keys import ApiCaller
from core.errors import Forbidden, InvalidInput, StorageUnavailable
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
    """A session committed as soon as the endpoint returns, before the answer is sent.

    ``scope="function"`` below is what makes it so: FastAPI runs a yield dependency's exit after the
    response by default, which would tell a client "stored" before the commit. A failed commit answers 503.
    """
    with loop.session() as session:
        try:
            yield session
            commit_or_503(session)
        except DataError as error:  # the database refused a value as input (PostgreSQL: NUL in text)
            raise InvalidInput("the database cannot hold a value of this request (text with a NUL character, "
                               "or a number out of its range)") from error


def commit_or_503(session: Session) -> None:
    """Commit; when the database does not keep the write, StorageUnavailable (503), never a success."""
    try:
        session.commit()
    except DataError:
        raise
    except SQLAlchemyError as error:
        logging.getLogger(__name__).exception("commit failed; answering 503")
        raise StorageUnavailable("the database did not keep this write; nothing was stored, try again") from error


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def current_caller(request: Request, credentials: BearerDep) -> ApiCaller:
    """Who is calling: the caller ``KeyFirstMiddleware`` found, or (where it did not run) the key looked up now.

    Async, and taking the loop from the app rather than through LoopDep, so no worker-thread hop.
    """
    caller = getattr(request.state, CALLER_STATE, None)
    if isinstance(caller, ApiCaller):
        return caller
    loop: FeedbackLoop = request.app.state.loop
    return await caller_for(loop, credentials.credentials if credentials is not None else None)


CallerDep = Annotated[ApiCaller, Depends(current_caller)]


def requires(scope: str) -> Callable[[ApiCaller], Awaitable[ApiCaller]]:
    """A dependency: the caller, when its key holds ``scope`` (or one that grants it); 403 naming it otherwise."""

    async def check_scope(caller: CallerDep) -> ApiCaller:
        if not caller.allows(scope):
            raise Forbidden(f"this needs a key with the {scope!r} scope; key {caller.name!r} has "
                            f"{', '.join(sorted(caller.scopes)) or 'none'}")
        return caller

    return check_scope


# The caller, per need (the permission matrix is in core/auth/api_keys.py).
ReadKey = Annotated[ApiCaller, Depends(requires("read"))]
PmKey = Annotated[ApiCaller, Depends(requires("pm"))]
IntakeKey = Annotated[ApiCaller, Depends(requires("intake"))]
AdminKey = Annotated[ApiCaller, Depends(requires("admin"))]
