"""Engine and session factories, and schema migration; nothing is created at import."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from core.errors import StorageUnavailable

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# What a SQLite WAL keeps after a checkpoint: room for the writes of many seconds at peak intake (the
# server checkpoints every second), so a burst does not make the file grow again each time, while a
# one-off import's hundreds of megabytes go back to the filesystem.
WAL_SIZE_LIMIT_BYTES = 32 * 1024 * 1024


class Base(DeclarativeBase):
    pass


def make_engine(database_url: str, background_checkpoints: bool = False, pool_size: int = 5,
                max_overflow: int = 10) -> Engine:
    """An engine for the URL; SQLite gets WAL, a busy timeout and enforced foreign keys.

    With ``background_checkpoints`` (the server), commits never fold the WAL back into the database
    themselves: ``WalCheckpointer`` does it from a thread, so no request waits behind a checkpoint.
    """
    kwargs: dict[str, Any] = {"future": True}
    if database_url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:  # per process: a server or worker process holds at most pool_size + max_overflow connections
        kwargs.update(pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)
    engine = create_engine(database_url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        if background_checkpoints:
            event.listen(engine, "connect", _no_autocheckpoint)
    return engine


def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


class WalCheckpointer:
    """A thread that checkpoints a SQLite WAL every ``interval_s`` without blocking writers (PASSIVE)."""

    def __init__(self, engine: Engine, interval_s: float = 1.0) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpointer", daemon=True)

    def start(self) -> None:
        if self.engine.dialect.name == "sqlite":
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self.engine.dialect.name == "sqlite":  # fold everything back before the server goes away
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # SQLite reuses the WAL file from its start after a checkpoint but never shrinks it on its own: one large
    # import or burst would leave a file of its peak size for good. With a limit, the file is cut back to it
    # whenever the log restarts after a checkpoint.
    cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def migrate(engine: Engine) -> None:
    """Bring the database schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def refresh_statistics(engine: Engine, tables: Sequence[str]) -> None:
    """ANALYZE ``tables`` on PostgreSQL (nothing elsewhere): after a wholesale rewrite, the planner's old
    statistics make the next queries on them seconds slow until autovacuum catches up (it waits for a share
    of the rows to change); bench/scale_out_bench.py saw assignment passes and embedding claims take 1-6 s
    for the first 20 s after each re-clustering. ``tables`` are the code's own names, never input."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as connection:
        connection.execute(text("ANALYZE " + ", ".join(tables)))
        connection.commit()


def as_storage_unavailable(error: BaseException) -> BaseException:
    """A database that cannot be reached or cannot take the write (a connection refused or broken, a server
    restarting, SQLite's lock held too long) as StorageUnavailable: nothing was stored, and the caller is
    told to retry (503 with ``Retry-After``) instead of seeing a 500. Any other error is returned as it is."""
    if isinstance(error, OperationalError | InterfaceError) or (
            isinstance(error, DBAPIError) and error.connection_invalidated):
        unavailable = StorageUnavailable("the database is unavailable right now; nothing was stored, retry")
        unavailable.__cause__ = error
        return unavailable
    return error
