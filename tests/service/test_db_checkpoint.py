"""SQLite checkpoints: run by a writer after it has released the writer lock, not inside
``COMMIT`` (where SQLite's automatic one runs, with the other writers waiting)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service import db


def _write(engine, size: int) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS blobs (b BLOB)")
        connection.exec_driver_sql("INSERT INTO blobs VALUES (zeroblob(?))", (size,))


def test_a_writer_checkpoints_after_its_commit_once_the_interval_has_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "relgov.db"
    engine = db.make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        backstop = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert backstop == db._WriterLock.AUTOCHECKPOINT_PAGES

    monkeypatch.setattr(db._WriterLock, "CHECKPOINT_EVERY", 3600.0)
    _write(engine, 2_000_000)
    # Committed to the WAL only: below the backstop, and the interval has not passed.
    assert path.stat().st_size < 1_000_000
    assert Path(f"{path}-wal").stat().st_size > 2_000_000

    monkeypatch.setattr(db._WriterLock, "CHECKPOINT_EVERY", 0.0)
    _write(engine, 10)
    assert path.stat().st_size > 2_000_000  # copied into the database file
    engine.dispose()


def test_sqlite_connections_read_through_a_memory_map_with_a_larger_cache(
    tmp_path: Path,
) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'relgov.db'}")
    with engine.connect() as connection:
        mmap = connection.exec_driver_sql("PRAGMA mmap_size").scalar()
        cache = connection.exec_driver_sql("PRAGMA cache_size").scalar()
    engine.dispose()
    assert mmap == db.SQLITE_MMAP_BYTES
    assert cache == -db.SQLITE_CACHE_KIB
