"""Commands for the operator: ``plugins`` and ``keys`` (create, list, revoke; each audited as cli:<user>)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from core.auth.api_keys import SCOPES, create_api_key, list_api_keys, revoke_api_key
from core.cli import tables
from core.cli.common import consoles, open_loop
from core.loop import FeedbackLoop
from core.models import ApiKey
from core.plugin_manager import list_plugins
from core.settings import get_settings

SCOPE_HELP = ("Repeatable: read (GET feedback, themes, deliveries), pm (read + theme review, retries, dry run, "
              "reply template), intake (POST /api/v1/feedback), admin (everything), metrics (GET /metrics only).")


def plugins() -> None:
    """List plugins, their versions and the hooks each implements."""
    loop = FeedbackLoop(get_settings())
    consoles().out.print(tables.plugins_table(list_plugins(loop.pm)))


def keys_create(
    name: Annotated[str, typer.Argument(help="Who or what uses the key (shown in audit entries as key:NAME).")],
    scope: Annotated[list[str] | None, typer.Option(help=SCOPE_HELP)] = None,
    channel: Annotated[list[str] | None, typer.Option(
        help="Repeatable: bind an intake key to these API channels (default: any API channel).")] = None,
) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    loop = open_loop()
    with loop.session() as session:
        key = create_api_key(session, name, scope or [], channel or None)
    consoles().out.print(key, highlight=False, soft_wrap=True)


def keys_table(keys: Sequence[ApiKey]) -> Table:
    """Fits 80 columns: long names and channel lists are cut with an ellipsis rather than wrapped."""
    table = Table(title=f"{len(keys)} API keys", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("id", justify="right", no_wrap=True, min_width=2)
    table.add_column("name", no_wrap=True, overflow="ellipsis", max_width=20)
    table.add_column("scopes", no_wrap=True, overflow="ellipsis", max_width=12)
    table.add_column("channels", no_wrap=True, overflow="ellipsis", max_width=12)
    table.add_column("created", no_wrap=True, min_width=10)
    table.add_column("state", no_wrap=True, min_width=7)
    for key in keys:
        scopes = key.scopes if key.scopes is not None else [f"({key.role})"]
        table.add_row(str(key.id), key.name, ",".join(scopes), ",".join(key.channels) if key.channels else "any",
                      f"{key.created_at:%Y-%m-%d}", "revoked" if key.revoked else "active")
    return table


def keys_list() -> None:
    """List API keys (names, scopes, bound channels; never the keys themselves)."""
    loop = open_loop()
    with loop.session() as session:
        consoles().out.print(keys_table(list_api_keys(session)))


def keys_revoke(name: Annotated[str, typer.Argument(help="The key's name, as `keys list` shows it.")]) -> None:
    """Revoke a key: the next request with it gets 401."""
    loop = open_loop()
    with loop.session() as session:
        revoke_api_key(session, name)
    consoles().out.print(f"Key {name!r} revoked.")


def register(app: typer.Typer) -> None:
    app.command()(plugins)
    keys = typer.Typer(help=f"API keys for `Authorization: Bearer <key>`; scopes: {', '.join(SCOPES)}.",
                       no_args_is_help=True)
    keys.command("create")(keys_create)
    keys.command("list")(keys_list)
    keys.command("revoke")(keys_revoke)
    app.add_typer(keys, name="keys")
