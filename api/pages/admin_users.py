"""Workspace accounts (``/admin/users``) and API keys (``/admin/keys``), for admins.

Accounts are changed with core/auth/users.py as ``feedbackloop users`` changes them, and audited the
same way (``add_user``, ``update_user``, ``sign_out_user``); the last active admin can be neither demoted
nor deactivated (``update_user`` refuses). Deactivating an account ends its sessions, as does "sign out
everywhere". A change to an existing account goes through a confirm page that says what will change.
Keys are made and revoked with core/auth/api_keys.py; a new key is shown once, on the answer to the
form that made it (only its hash is stored, so it cannot be shown again).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from api.deps import LoopDep, SessionDep
from api.pages.admin_common import (
    Confirmation,
    done,
    flash,
    forget_change,
    form_raw,
    refused_status,
    render_confirm,
)
from api.pages.common import AdminUser, CheckedForm, CurrentUser, form_text, render
from core.audit import record
from core.auth.api_keys import ADMIN_KEY_NAME, SCOPES, create_api_key, list_api_keys, revoke_api_key
from core.auth.users import MIN_PASSWORD_CHARS, ROLES, add_user, list_users, update_user
from core.auth.web_sessions import live_sessions, revoke_user_sessions
from core.errors import FeedbackloopError, InvalidInput, NotFound
from core.models import ApiKey, Owner, User, WebSession

router = APIRouter(include_in_schema=False)
UserIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="A user's id.")]
CHANGES = ("update", "deactivate", "reactivate", "sign_out")
ROLE_HELP = {"admin": "everything, and these admin pages", "pm": "reviews themes: every theme action, triage",
             "owner": "works their team's inbox; reads the rest", "viewer": "reads only"}
SCOPE_HELP = {"admin": "everything, including channels and rules", "pm": "theme work, retries, the dry run",
              "intake": "posts feedback only", "read": "reads feedback, themes and deliveries",
              "metrics": "scrapes /metrics only (Prometheus)"}
MAX_FIELD_CHARS = 320


def _text(form: FormData, name: str) -> str:
    value = form_text(form, name)
    if len(value) > MAX_FIELD_CHARS:
        raise InvalidInput(f"{name} is at most {MAX_FIELD_CHARS} characters")
    return value


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


def _team(session: Session, user: User) -> str:
    return (session.get(Owner, user.owner_id).name if user.owner_id is not None  # type: ignore[union-attr]
            else "")


def _live_counts(session: Session) -> dict[int, int]:
    return {user_id: count for user_id, count in session.execute(
        select(WebSession.user_id, func.count()).where(WebSession.revoked_at.is_(None)).group_by(WebSession.user_id))}


def users_page(request: Request, current: CurrentUser, session: Session, error: str | None = None,
               form: FormData | None = None, status_code: int = 200) -> HTMLResponse:
    users = list_users(session)
    teams = {owner.id: owner.name for owner in session.scalars(select(Owner))}
    values = {name: form_text(form, name) for name in ("email", "name", "role", "team")} if form else {}
    return render(request, "admin_users.html", current, {
        "users": users, "teams": teams, "sessions": _live_counts(session), "roles": ROLES, "role_help": ROLE_HELP,
        "team_names": sorted(teams.values()), "min_password": MIN_PASSWORD_CHARS, "values": values,
        "done": flash(request), "error": error}, status_code=status_code, session=session)


def user_page(request: Request, current: CurrentUser, session: Session, user: User, error: str | None = None,
              status_code: int = 200) -> HTMLResponse:
    return render(request, "admin_user.html", current, {
        "person": user, "team": _team(session, user), "sessions": live_sessions(session, user.id), "roles": ROLES,
        "role_help": ROLE_HELP, "team_names": sorted(session.scalars(select(Owner.name))), "done": flash(request),
        "error": error}, status_code=status_code, session=session)


@router.get("/admin/users", response_class=HTMLResponse)
def admin_users(request: Request, current: AdminUser, session: SessionDep) -> HTMLResponse:
    return users_page(request, current, session)


@router.post("/admin/users", response_class=HTMLResponse)
def admin_add_user(request: Request, current: AdminUser, session: SessionDep, form: CheckedForm) -> Response:
    try:
        password = form_raw(form, "password") or None
        team = _text(form, "team")
        user = add_user(session, _text(form, "email"), _text(form, "role"), password=password,
                        name=_text(form, "name") or None, owner=team or None)
        record(session, current.actor, "add_user", "user", user.email,
               {"role": user.role, "team": team or None, "password": password is not None})
    except FeedbackloopError as error:
        forget_change(session)
        return users_page(request, current, session, error.message, form, refused_status(error))
    how = "with a password" if password else "without a password (OpenID Connect sign-in only)"
    return done("/admin/users", f"User {user.email} added as {user.role}, {how}.")


@router.get("/admin/users/{user_id}", response_class=HTMLResponse)
def admin_user(user_id: UserIdPath, request: Request, current: AdminUser, session: SessionDep) -> HTMLResponse:
    return user_page(request, current, session, _user(session, user_id))


def _planned(session: Session, user: User, change: str, role: str, team: str) -> tuple[list[str], dict[str, Any]]:
    """What ``change`` would do to ``user`` (lines for the confirm page) and the audit details it records."""
    if change == "update":
        lines, details = [], {}
        if role and role != user.role:
            if role not in ROLES:
                raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}")
            lines.append(f"Role: {user.role} → {role} ({ROLE_HELP[role]}).")
            details["role"] = role
        if team != _team(session, user):
            new = team and session.scalar(select(Owner.id).where(Owner.name == team)) is None
            lines.append(f"Team: {_team(session, user) or 'none'} → {team or 'none'}"
                         f"{' (a new team, made now)' if new else ''}.")
            details["team"] = team
        if not lines:
            raise InvalidInput("nothing to change: pick another role or team")
        return lines, details
    if change in ("deactivate", "reactivate") and user.active == (change == "reactivate"):
        raise InvalidInput(f"{user.email} is already {'active' if user.active else 'inactive'}")
    if change == "deactivate":
        return [f"{user.email} can no longer sign in.",
                f"Their {len(live_sessions(session, user.id))} open sessions end now."], {"active": False}
    if change == "reactivate":
        return [f"{user.email} can sign in again, as {user.role}."], {"active": True}
    if change == "sign_out":
        return [f"All {len(live_sessions(session, user.id))} open sessions of {user.email} end now; "
                "they can sign in again."], {}
    raise InvalidInput(f"change must be one of {', '.join(CHANGES)}")


ChangeQuery = Annotated[str, Query(max_length=32)]
FieldQuery = Annotated[str, Query(max_length=MAX_FIELD_CHARS)]


@router.get("/admin/users/{user_id}/confirm", response_class=HTMLResponse)
def admin_user_confirm(user_id: UserIdPath, request: Request, current: AdminUser, session: SessionDep,
                       change: ChangeQuery, role: FieldQuery = "", team: FieldQuery = "") -> HTMLResponse:
    user = _user(session, user_id)
    try:
        lines, _details = _planned(session, user, change, role.strip(), team.strip())
    except FeedbackloopError as error:
        return user_page(request, current, session, user, error.message, refused_status(error))
    warnings = []
    if user.id == current.user.id and (change in ("deactivate", "sign_out") or role not in ("", "admin")):
        warnings.append("This is your own account: " + ("you will be signed out." if change != "update"
                                                          else "you lose the admin pages."))
    titles = {"update": f"Change {user.email}?", "deactivate": f"Deactivate {user.email}?",
              "reactivate": f"Reactivate {user.email}?", "sign_out": f"Sign {user.email} out everywhere?"}
    return render_confirm(request, current, session, Confirmation(
        title=titles[change], lines=lines, warnings=warnings, post_to=f"/admin/users/{user.id}",
        back=f"/admin/users/{user.id}", hidden=[("change", change), ("role", role.strip()), ("team", team.strip())],
        danger=change in ("deactivate", "sign_out")))


@router.post("/admin/users/{user_id}", response_class=HTMLResponse)
def admin_user_change(user_id: UserIdPath, request: Request, current: AdminUser, session: SessionDep,
                      form: CheckedForm) -> Response:
    user = _user(session, user_id)
    change = form_text(form, "change")
    try:
        _lines, details = _planned(session, user, change, _text(form, "role"), _text(form, "team"))
        if change == "sign_out":
            details["sessions_ended"] = revoke_user_sessions(session, user.id)
            record(session, current.actor, "sign_out_user", "user", user.email, details)
        else:
            update_user(session, user.email, role=details.get("role"), active=details.get("active"),
                        owner=details.get("team"))
            if details.get("active") is False:
                details["sessions_ended"] = revoke_user_sessions(session, user.id)
            record(session, current.actor, "update_user", "user", user.email, details)
    except FeedbackloopError as error:
        forget_change(session)
        return user_page(request, current, session, _user(session, user_id), error.message, refused_status(error))
    messages = {"update": f"{user.email} is now {user.role}" + (f" in team {_team(session, user)}."
                                                                 if user.owner_id else ", in no team."),
                "deactivate": f"{user.email} deactivated; {details.get('sessions_ended', 0)} sessions ended.",
                "reactivate": f"{user.email} can sign in again.",
                "sign_out": f"{details.get('sessions_ended', 0)} sessions of {user.email} ended."}
    return done(f"/admin/users/{user.id}", messages[change])


# API keys ---------------------------------------------------------------------------------------------


def keys_page(request: Request, current: CurrentUser, session: Session, loop_admin_key: bool,
              error: str | None = None, form: FormData | None = None, status_code: int = 200) -> HTMLResponse:
    values: dict[str, Any] = {"name": form_text(form, "name"), "channels": form_text(form, "channels"),
                              "scopes": [s for s in form.getlist("scope") if isinstance(s, str)]} if form else {}
    return render(request, "admin_keys.html", current, {
        "keys": list_api_keys(session), "scopes": SCOPES, "scope_help": SCOPE_HELP, "values": values,
        "admin_key_name": ADMIN_KEY_NAME, "env_admin_key": loop_admin_key, "done": flash(request),
        "error": error}, status_code=status_code, session=session)


@router.get("/admin/keys", response_class=HTMLResponse)
def admin_keys(request: Request, current: AdminUser, session: SessionDep, loop: LoopDep) -> HTMLResponse:
    return keys_page(request, current, session, bool(loop.settings.admin_key))


@router.post("/admin/keys", response_class=HTMLResponse)
def admin_create_key(request: Request, current: AdminUser, session: SessionDep, loop: LoopDep,
                     form: CheckedForm) -> HTMLResponse:
    scopes = [scope for scope in form.getlist("scope") if isinstance(scope, str)]
    channels_text = _text(form, "channels")
    channels = [name for name in channels_text.split(",") if name.strip()] or None
    try:
        key = create_api_key(session, _text(form, "name"), scopes, channels, actor=current.actor)
    except FeedbackloopError as error:
        forget_change(session)
        return keys_page(request, current, session, bool(loop.settings.admin_key), error.message, form,
                         refused_status(error))
    made = session.scalar(select(ApiKey).where(ApiKey.name == _text(form, "name"), ApiKey.revoked.is_(False)))
    # Answered with the key itself rather than a redirect: it exists nowhere else (the answer is no-store).
    return render(request, "admin_key_created.html", current, {"key": key, "row": made}, status_code=201,
                  session=session)


KeyNameQuery = Annotated[str, Query(min_length=1, max_length=128)]


@router.get("/admin/keys/revoke", response_class=HTMLResponse)
def admin_revoke_key_confirm(request: Request, current: AdminUser, session: SessionDep, loop: LoopDep,
                             name: KeyNameQuery) -> HTMLResponse:
    row = session.scalar(select(ApiKey).where(ApiKey.name == name, ApiKey.revoked.is_(False)))
    if row is None:
        return keys_page(request, current, session, bool(loop.settings.admin_key),
                         f"no active key named {name!r}", status_code=404)
    scopes = ", ".join(row.scopes or [row.role])
    return render_confirm(request, current, session, Confirmation(
        title=f"Revoke key {name}?", lines=[
            f"Key {name} ({scopes}) stops working at once: the next request with it is answered 401.",
            "A revoked key cannot be restored; make a new one if it is needed again."],
        post_to="/admin/keys/revoke", back="/admin/keys", hidden=[("name", name)], button="Revoke key",
        danger=True))


@router.post("/admin/keys/revoke", response_class=HTMLResponse)
def admin_revoke_key(request: Request, current: AdminUser, session: SessionDep, loop: LoopDep,
                     form: CheckedForm) -> Response:
    name = _text(form, "name")
    try:
        revoke_api_key(session, name, actor=current.actor)
    except FeedbackloopError as error:
        forget_change(session)
        return keys_page(request, current, session, bool(loop.settings.admin_key), error.message,
                         status_code=refused_status(error))
    return done("/admin/keys", f"Key {name} revoked.")
