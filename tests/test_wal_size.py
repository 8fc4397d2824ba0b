"""The SQLite write-ahead log gives its space back: after a burst bigger than the limit and a checkpoint, the
file is cut back to ``journal_size_limit`` (core/db.py) instead of keeping its peak size for good."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text

from core.db import WAL_SIZE_LIMIT_BYTES, WalCheckpointer, make_engine

MIB = 1 << 20


@pytest.mark.parametrize("background_checkpoints", [True, False], ids=["server", "command"])
def test_the_wal_is_cut_back_after_a_checkpoint(tmp_path: Path, background_checkpoints: bool) -> None:
    database = tmp_path / "wal.db"
    wal = Path(f"{database}-wal")
    engine = make_engine(f"sqlite:///{database}", background_checkpoints=background_checkpoints)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB)"))
        # One transaction bigger than the limit: no checkpoint can run inside it, so the WAL must grow past it.
        with engine.begin() as connection:
            for _ in range(WAL_SIZE_LIMIT_BYTES // MIB + 16):
                connection.execute(text("INSERT INTO blobs (body) VALUES (:body)"), {"body": os.urandom(MIB)})
        peak = wal.stat().st_size
        assert peak > WAL_SIZE_LIMIT_BYTES
        # A checkpoint as the server's WalCheckpointer makes them (PASSIVE, beside writers), then more writes.
        checkpointer = WalCheckpointer(engine)
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        for index in range(20):
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO blobs (body) VALUES (:body)"), {"body": f"small {index}".encode()})
        assert wal.stat().st_size <= WAL_SIZE_LIMIT_BYTES < peak
        with engine.begin() as connection:
            stored = connection.execute(text("SELECT count(*) FROM blobs")).scalar_one()
        assert stored == WAL_SIZE_LIMIT_BYTES // MIB + 16 + 20  # nothing was lost on the way
        checkpointer.stop()  # what the server does on its way out: the log folded back entirely
        assert not wal.exists() or wal.stat().st_size == 0
    finally:
        engine.dispose()
