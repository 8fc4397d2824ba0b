"""Request dependencies: the FeedbackLoop, a database session, and API-key checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from core.auth.api_keys import role_for_key
from core.loop import FeedbackLoop


def get_loop(request: Request) -> FeedbackLoop:
    loop: FeedbackLoop = request.app.state.loop
    return loop


LoopDep = Annotated[FeedbackLoop, Depends(get_loop)]


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
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            detail="missing or invalid API key; send 'Authorization: Bearer <key>'",
                            headers={"WWW-Authenticate": "Bearer"})
    return role


RoleDep = Annotated[str, Depends(require_key)]


def require_admin(role: str, what: str) -> None:
    """403 unless the caller's key is an admin key."""
    if role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"{what} needs an admin key")
