"""SQLite engine details: the server's WAL is folded back by a background checkpointer, not by commits."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from core.db import WalCheckpointer, make_engine, refresh_statistics
from core.loop import FeedbackLoop
from core.themes.build import RECLUSTERING_REWRITES


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


def test_statistics_are_refreshed_after_a_rewrite_on_postgresql(any_loop: FeedbackLoop) -> None:
    """A re-clustering rewrites every membership; PostgreSQL's planner is told at once (ANALYZE)."""
    refresh_statistics(any_loop.engine, RECLUSTERING_REWRITES)
    if any_loop.engine.dialect.name != "postgresql":
        return  # SQLite: nothing to refresh, and nothing happens
    with any_loop.engine.connect() as connection:
        analyzed = dict(connection.execute(text(
            "SELECT relname, last_analyze FROM pg_stat_user_tables WHERE relname IN ('theme_memberships', 'themes')")
        ).all())
    assert set(analyzed) == {"theme_memberships", "themes"} and all(analyzed.values())
