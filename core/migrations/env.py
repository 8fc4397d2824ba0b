"""Alembic environment: runs on the connection handed over by ``core.db.migrate``."""

from alembic import context
from sqlalchemy import create_engine

from core import models  # noqa: F401  (registers the tables on Base.metadata)
from core.db import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        # Running from the alembic command line: use the URL given with -x url=...
        url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///./feedbackloop.db")
        with create_engine(url).begin() as own_connection:
            context.configure(connection=own_connection, target_metadata=target_metadata,
                              render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
