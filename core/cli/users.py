"""``feedbackloop users``: workspace accounts (add, list, set, reset-password, sign-out), each audited."""

from __future__ import annotations

import secrets
import sys
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from core.audit import cli_actor, record
from core.auth.users import ROLES, add_user, find_user, list_users, normal_email, set_password, update_user
from core.auth.web_sessions import revoke_user_sessions
from core.cli.common import consoles, open_loop
from core.errors import InvalidInput, NotFound
from core.models import User

ROLE_HELP = ("admin (everything, admin pages), pm (reviews themes), owner (their team's inbox; reads the rest), "
             "viewer (reads only).")
PASSWORD_HELP = ("Read the password from standard input (one line) instead of making one up; a made-up "
                 "password is printed once.")


def _password(from_stdin: bool) -> tuple[str, bool]:
    """The new password and whether it was generated (and so must be shown)."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\n")
        if not line:
            raise InvalidInput("no password on standard input")
        return line, False
    return secrets.token_urlsafe(15), True


def users_add(
    email: Annotated[str, typer.Argument(help="The person's e-mail address: they sign in with it.")],
    role: Annotated[str, typer.Option(help=ROLE_HELP)] = "viewer",
    name: Annotated[str, typer.Option(help="Shown in the workspace and the audit log.")] = "",
    team: Annotated[str, typer.Option(help="For owners: the team whose inbox they work from.")] = "",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help=PASSWORD_HELP)] = False,
    no_password: Annotated[bool, typer.Option("--no-password",
                                              help="Sign-in only through OpenID Connect.")] = False,
) -> None:
    """Add a workspace account with a role and (unless --no-password) a local password."""
    password, generated = (None, False) if no_password else _password(password_stdin)
    loop = open_loop()
    with loop.session() as session:
        user = add_user(session, email, role, password=password, name=name or None, owner=team or None)
        record(session, cli_actor(), "add_user", "user", user.email, {"role": role, "team": team or None})
    consoles().out.print(f"User {user.email} added as {role}.", highlight=False)
    if generated:
        consoles().out.print(f"Password (shown once): {password}", highlight=False, soft_wrap=True)


def users_reset_password(
    email: Annotated[str, typer.Argument(help="The account's e-mail address.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help=PASSWORD_HELP)] = False,
) -> None:
    """Set a new password; every session of the account is signed out."""
    password, generated = _password(password_stdin)
    loop = open_loop()
    with loop.session() as session:
        user = set_password(session, email, password)
        ended = revoke_user_sessions(session, user.id)
        record(session, cli_actor(), "reset_password", "user", user.email, {"sessions_ended": ended})
    consoles().out.print(f"Password of {user.email} reset; {ended} sessions signed out.", highlight=False)
    if generated:
        consoles().out.print(f"Password (shown once): {password}", highlight=False, soft_wrap=True)


def users_set(
    email: Annotated[str, typer.Argument(help="The account's e-mail address.")],
    role: Annotated[str | None, typer.Option(help=ROLE_HELP)] = None,
    team: Annotated[str | None, typer.Option(help="The owner's team ('' to clear).")] = None,
    active: Annotated[bool | None, typer.Option("--active/--inactive",
                                                help="An inactive account cannot sign in.")] = None,
) -> None:
    """Change an account's role, team or whether it may sign in (deactivating signs it out)."""
    loop = open_loop()
    with loop.session() as session:
        user = update_user(session, email, role=role, active=active, owner=team)
        if active is False:
            revoke_user_sessions(session, user.id)
        record(session, cli_actor(), "update_user", "user", user.email,
               {"role": role, "team": team, "active": active})
    consoles().out.print(f"User {user.email} updated.", highlight=False)


def users_sign_out(email: Annotated[str, typer.Argument(help="The account's e-mail address.")]) -> None:
    """End every session of an account (a lost laptop)."""
    loop = open_loop()
    with loop.session() as session:
        user = find_user(session, email)
        if user is None:
            raise NotFound(f"no user {normal_email(email)}")
        ended = revoke_user_sessions(session, user.id)
        record(session, cli_actor(), "sign_out_user", "user", user.email, {"sessions_ended": ended})
    consoles().out.print(f"{ended} sessions of {user.email} signed out.", highlight=False)


def users_table(users: list[User]) -> Table:
    """Fits 80 columns: long addresses are cut with an ellipsis rather than wrapped."""
    table = Table(title=f"{len(users)} users", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("email", no_wrap=True, overflow="ellipsis", max_width=30)
    table.add_column("role", no_wrap=True, min_width=6)
    table.add_column("sign-in", no_wrap=True, min_width=8)
    table.add_column("last seen", no_wrap=True, min_width=10)
    table.add_column("state", no_wrap=True, min_width=8)
    for user in users:
        methods = "+".join(m for m, on in (("password", user.password_hash), ("oidc", user.oidc_subject)) if on)
        table.add_row(user.email, user.role, methods or "none",
                      f"{user.last_sign_in_at:%Y-%m-%d}" if user.last_sign_in_at else "never",
                      "active" if user.active else "inactive")
    return table


def users_list() -> None:
    """List accounts: role, how they sign in, when they last did."""
    loop = open_loop()
    with loop.session() as session:
        consoles().out.print(users_table(list_users(session)))


def register(app: typer.Typer) -> None:
    users = typer.Typer(help=f"Workspace accounts; roles: {', '.join(ROLES)}.", no_args_is_help=True)
    users.command("add")(users_add)
    users.command("list")(users_list)
    users.command("set")(users_set)
    users.command("reset-password")(users_reset_password)
    users.command("sign-out")(users_sign_out)
    app.add_typer(users, name="users")
