"""SQLite engine details: the server's WAL is folded back by a background checkpointer, not by commits."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from core.db import WalCheckpointer, make_engine


def test_server_engine_leaves_checkpoints_to_the_background_thread(tmp_path: Path) -> None:
    database = tmp_path / "wal.db"
    engine = make_engine(f"sqlite:///{database}", background_checkpoints=True)
    with engine.begin() as connection:
        assert connection.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == 0
        connection.execute(text("CREATE TABLE t (x TEXT)"))
        for _ in range(200):
            connection.execute(text("INSERT INTO t VALUES (:x)"), {"x": "y" * 4000})
    wal = Path(f"{database}-wal")
    assert wal.stat().st_size > 0
    checkpointer = WalCheckpointer(engine, interval_s=0.05)
    checkpointer.start()
    checkpointer.stop()
    assert wal.stat().st_size == 0  # everything folded back into the database file
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM t")).scalar_one() == 200
    engine.dispose()


def test_ordinary_engines_keep_automatic_checkpoints(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'plain.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == 1000
    engine.dispose()


def test_workspace_searches_have_a_trigram_index_on_postgresql(database_url: str) -> None:
    """Migration 0006: on PostgreSQL the redacted texts get a pg_trgm index (ILIKE '%term%' reads it)."""
    from core.db import migrate

    engine = make_engine(database_url)
    try:
        migrate(engine)
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                found = connection.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = "
                                                "'ix_feedback_items_text_trgm'")).scalar()
                assert found is not None and "gin_trgm_ops" in found
            else:  # SQLite has no such index type: the migration leaves it out, and LIKE reads the texts
                assert connection.execute(text("SELECT count(*) FROM sqlite_master WHERE name = "
                                               "'ix_feedback_items_text_trgm'")).scalar() == 0
    finally:
        engine.dispose()
