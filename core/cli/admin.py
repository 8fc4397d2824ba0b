"""Commands for the operator: ``plugins`` and ``keys``."""

from __future__ import annotations

from typing import Annotated

import typer

from core.auth.api_keys import create_api_key
from core.cli import tables
from core.cli.common import consoles, open_loop
from core.errors import InvalidInput
from core.loop import FeedbackLoop
from core.plugin_manager import list_plugins
from core.settings import get_settings

KEY_ROLES = ("admin", "member")


def plugins() -> None:
    """List plugins, their versions and the hooks each implements."""
    loop = FeedbackLoop(get_settings())
    consoles().out.print(tables.plugins_table(list_plugins(loop.pm)))


def keys_create(
    name: Annotated[str, typer.Argument(help="Who or what uses the key (shown in audit entries).")],
    role: Annotated[str, typer.Option(help="admin (everything) or member (feedback and themes).")] = "member",
) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    if role not in KEY_ROLES:
        raise InvalidInput(f"--role must be admin or member, not {role!r}")
    if not name.strip():
        raise InvalidInput("the key needs a name")
    loop = open_loop()
    with loop.session() as session:
        key = create_api_key(session, name.strip(), role)
    consoles().out.print(key, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(plugins)
    keys = typer.Typer(help="API keys for `Authorization: Bearer <key>`.", no_args_is_help=True)
    keys.command("create")(keys_create)
    app.add_typer(keys, name="keys")
