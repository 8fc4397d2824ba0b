"""People who sign in to the workspace, and what their role lets them do.

Roles, from most to least: ``admin`` (everything, and the admin pages), ``pm`` (reviews themes: every
action on a theme, triage, suggestions), ``owner`` (reads everything; works the tickets of their team's
inbox), ``viewer`` (reads only). Passwords are hashed with argon2id by argon2-cffi's ``PasswordHasher``
(its defaults follow RFC 9106's recommendations and move with the library: a stored hash made with older
parameters is rehashed at the next sign-in).
"""

from __future__ import annotations

from contextlib import suppress
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.errors import Conflict, InvalidInput, NotFound
from core.models import Owner, User
from core.routing.plan import ensure_owner

ROLES = ("admin", "pm", "owner", "viewer")
EDIT_ROLES = frozenset({"admin", "pm"})
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024  # argon2 hashes any length; a megabyte "password" is only a way to burn CPU
MAX_EMAIL_CHARS = 320


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()


def normal_email(email: str) -> str:
    """The stored form of an address: trimmed, lower-case; refuses what is plainly not one."""
    value = email.strip().lower()
    local, _, domain = value.partition("@")
    if not local or not domain or len(value) > MAX_EMAIL_CHARS or any(c.isspace() for c in value):
        raise InvalidInput(f"{email!r} is not an e-mail address")
    return value


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role


def check_new_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidInput(f"a password has at most {MAX_PASSWORD_CHARS} characters")
    return password


def can_edit(role: str) -> bool:
    """Whether this role may change themes (rename, merge, split, move, status, owner, route)."""
    return role in EDIT_ROLES


def is_admin(role: str) -> bool:
    return role == "admin"


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normal_email(email)))


def add_user(session: Session, email: str, role: str, password: str | None = None, name: str | None = None,
             owner: str | None = None) -> User:
    """A new account; ``owner`` names the team whose inbox an ``owner`` works from (made if new)."""
    address = normal_email(email)
    check_role(role)
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        raise Conflict(f"a user {address} already exists")
    user = User(email=address, role=role, name=(name or "").strip()[:128], active=True,
                password_hash=_hasher().hash(check_new_password(password)) if password is not None else None)
    if owner:
        user.owner_id = ensure_owner(session, owner).id
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, email: str, password: str) -> User:
    user = find_user(session, email)
    if user is None:
        raise NotFound(f"no user {normal_email(email)}")
    user.password_hash = _hasher().hash(check_new_password(password))
    return user


def check_password(session: Session, email: str, password: str) -> User | None:
    """The active user with this address and password, else None (the same answer for both mistakes).

    When the address is unknown a hash is still verified, so the answer takes as long either way and the
    timing does not tell which addresses have accounts.
    """
    hasher = _hasher()
    try:
        address = normal_email(email)
    except InvalidInput:
        address = ""
    user = session.scalar(select(User).where(User.email == address)) if address else None
    stored = user.password_hash if user is not None and user.active else None
    if stored is None or len(password) > MAX_PASSWORD_CHARS:
        with suppress(VerificationError):  # only the time it takes matters
            hasher.verify(_dummy_hash(hasher), password[:MAX_PASSWORD_CHARS])
        return None
    try:
        hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if hasher.check_needs_rehash(stored):
        user.password_hash = hasher.hash(password)  # type: ignore[union-attr]
    return user


@lru_cache(maxsize=1)
def _dummy_hash(hasher: PasswordHasher) -> str:
    # Made on first use (not at import), once per process: a hash to verify against for unknown addresses.
    return hasher.hash("not a password anyone has")


def oidc_user(session: Session, issuer: str, subject: str, email: str | None, name: str | None,
              default_role: str) -> User:
    """The user behind an OpenID Connect identity; made on first sign-in with ``default_role``.

    An identity is its (issuer, subject) pair, never its e-mail claim: a provider may let people change
    their address. A first sign-in whose address already has a local account links to it only when that
    account has no other identity yet, so one account never answers to two providers' users.
    """
    user = session.scalar(select(User).where(User.oidc_issuer == issuer, User.oidc_subject == subject))
    if user is None:
        if not email:
            raise InvalidInput("the identity provider sent no e-mail address; ask it for the email scope")
        address = normal_email(email)
        user = session.scalar(select(User).where(User.email == address))
        if user is not None:
            if user.oidc_subject is not None:
                raise Conflict(f"{address} already signs in with another identity")
            user.oidc_issuer, user.oidc_subject = issuer, subject
        else:
            user = User(email=address, name=(name or "").strip()[:128], role=check_role(default_role),
                        oidc_issuer=issuer, oidc_subject=subject, active=True)
            session.add(user)
            session.flush()
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.email)))


def update_user(session: Session, email: str, *, role: str | None = None, active: bool | None = None,
                owner: str | None = None) -> User:
    user = find_user(session, email)
    if user is None:
        raise NotFound(f"no user {normal_email(email)}")
    if role is not None:
        if user.role == "admin" and role != "admin" and _active_admins(session) <= 1:
            raise Conflict("this is the last admin; make another admin first")
        user.role = check_role(role)
    if active is not None:
        if not active and user.role == "admin" and user.active and _active_admins(session) <= 1:
            raise Conflict("this is the last admin; make another admin first")
        user.active = active
    if owner is not None:
        user.owner_id = ensure_owner(session, owner).id if owner else None
    return user


def _active_admins(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(User)
                              .where(User.role == "admin", User.active.is_(True))) or 0)


def user_team(session: Session, user: User) -> Owner | None:
    return session.get(Owner, user.owner_id) if user.owner_id is not None else None


def mark_signed_in(user: User) -> None:
    user.last_sign_in_at = utcnow()
