"""Stepping a test database's schema down and back up with Alembic, inside one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, inspect

from core.db import MIGRATIONS_DIR


class Migrations:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.config = Config()
        self.config.set_main_option("script_location", str(MIGRATIONS_DIR))
        self.config.attributes["connection"] = connection

    def down(self, revision: str) -> None:
        command.downgrade(self.config, revision)

    def up(self) -> None:
        command.upgrade(self.config, "head")

    def tables(self) -> set[str]:
        return set(inspect(self.connection).get_table_names())

    def columns(self, table: str) -> set[str]:
        return {column["name"] for column in inspect(self.connection).get_columns(table)}


@contextmanager
def migrations(engine: Engine) -> Iterator[Migrations]:
    with engine.begin() as connection:
        yield Migrations(connection)
