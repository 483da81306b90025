"""One engine per app, one session per request.

Requests commit once at the end of the view (``commit()``), so a request that fails part-way
leaves nothing half-written: the teardown rolls back whatever was not committed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine


def make_engine(url: str, *, sqlite_transactions: bool = True) -> Engine:
    """An engine for ``url``.

    ``sqlite_transactions=False`` leaves SQLite in autocommit (each statement its own
    transaction): for test fixtures that must never hold a lock while the app works.
    """
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if url in ("sqlite://", "sqlite:///:memory:"):
            kwargs["poolclass"] = StaticPool
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        if sqlite_transactions:
            database = engine.url.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                lock = _WriterLock(f"{database}-writer.lock")
                event.listen(engine, "connect", lock.connect)
                event.listen(engine, "begin", lock.begin)
                event.listen(engine, "commit", lock.commit)
                event.listen(engine, "rollback", lock.rollback)
                event.listen(engine.pool, "close", lock.close)
            else:
                event.listen(engine, "begin", _sqlite_begin)
    return engine


# Reads of a SQLite file through a memory map (up to this many bytes of it) instead of
# copying each page into SQLite's cache: a broad search reads tens of thousands of rows
# (row reads fell by about a third). Only address space: the pages are the OS page cache,
# shared by every connection and process.
SQLITE_MMAP_BYTES = 1 << 30
# Each connection's page cache (negative: in KiB), for the pages not read through the map
# (the write-ahead log's). SQLite's default is 2 MiB.
SQLITE_CACHE_KIB = 16 * 1024


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy own transactions (pysqlite's implicit BEGIN is disabled here and
    # issued in _sqlite_begin), so SELECT ... then UPDATE sees one consistent snapshot.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # A writer takes the write lock up front (IMMEDIATE): two writers queue on the busy
    # timeout instead of one failing with "database is locked" half-way through. Page
    # views (GET) stay deferred so they read the WAL snapshot without waiting on writers.
    if _is_read_request():
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _is_read_request() -> bool:
    return has_request_context() and request.method in ("GET", "HEAD")


class _WriterLock:
    """Writers of a SQLite file queue on an OS file lock before ``BEGIN IMMEDIATE``.

    SQLite itself makes a second writer poll with sleeps of 1, 2, 5, ... up to 100 ms (its
    busy handler), so under concurrent writes a worker sleeps for milliseconds on a lock
    held for well under one: two gunicorn workers posting heartbeats spent most of their
    time asleep. ``flock`` hands the lock over as soon as it is released. It is polled with
    sleeps of 50 µs to 1 ms (no blocking call: a second write transaction in the same
    thread must fail after the busy timeout, not hang) and given up on after the busy
    timeout, leaving SQLite's own wait to decide. The lock is released right after
    ``COMMIT`` / ``ROLLBACK`` (done here, so that the release follows them). Only this
    service's processes take it; other SQLite clients still just wait on SQLite's lock.

    Checkpoints (copying the WAL into the database file) run after the release, not inside
    ``COMMIT``, where SQLite's automatic checkpoint runs (every 1,000 pages by default) and
    where the other writers would wait for it: a writer that has released the lock runs a
    passive checkpoint when :data:`CHECKPOINT_EVERY` has passed since its process's last
    one, while the next writer writes. SQLite's own is kept as a backstop at
    :data:`AUTOCHECKPOINT_PAGES` (other clients of the file; a WAL that keeps growing).
    """

    TIMEOUT = 30.0
    KEY = "relgov.writer_lock"
    CHECKPOINT_EVERY = 0.5  # seconds
    AUTOCHECKPOINT_PAGES = 10_000  # 40 MB of 4 KiB pages

    def __init__(self, path: str) -> None:
        self.path = path
        self._checkpointed = time.monotonic()

    def connect(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={self.AUTOCHECKPOINT_PAGES}")

    def begin(self, connection: Any) -> None:
        if _is_read_request():
            connection.exec_driver_sql("BEGIN")
            return
        info = connection.connection.info
        fd = info.get(self.KEY)
        if fd is None:
            fd = info[self.KEY] = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if self._acquire(fd):
            info[self.KEY + ".held"] = True
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self._release(info)
            raise

    def _acquire(self, fd: int) -> bool:
        delay, deadline = 0.00005, time.monotonic() + self.TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 0.001)
            except OSError:
                return False

    def _release(self, info: dict[str, Any]) -> None:
        if info.pop(self.KEY + ".held", False):
            fcntl.flock(info[self.KEY], fcntl.LOCK_UN)

    def commit(self, connection: Any) -> None:
        info = connection.connection.info
        if info.get(self.KEY + ".held"):
            # SQLAlchemy commits after this event; with pysqlite's autocommit mode that
            # second commit finds no transaction and does nothing.
            dbapi_connection = connection.connection.dbapi_connection
            try:
                dbapi_connection.commit()
            finally:
                self._release(info)
            self._checkpoint(dbapi_connection)

    def _checkpoint(self, dbapi_connection: Any) -> None:
        moment = time.monotonic()
        if moment - self._checkpointed < self.CHECKPOINT_EVERY:
            return
        self._checkpointed = moment
        # Another checkpoint running, a busy database: the next one will do.
        with contextlib.suppress(sqlite3.Error):
            dbapi_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def rollback(self, connection: Any) -> None:
        info = connection.connection.info
        if info.get(self.KEY + ".held"):
            try:
                connection.connection.dbapi_connection.rollback()
            finally:
                self._release(info)

    def close(self, _dbapi_connection: Any, record: Any) -> None:
        fd = record.info.pop(self.KEY, None)
        if fd is not None:
            record.info.pop(self.KEY + ".held", None)
            os.close(fd)


def init_app(app: Flask) -> None:
    app.extensions["relgov.engine"] = make_engine(app.config["SQLALCHEMY_DATABASE_URL"])
    app.teardown_appcontext(_close_session)


def engine() -> Engine:
    result: Engine = current_app.extensions["relgov.engine"]
    return result


def session() -> Session:
    """The request's session, opened on first use."""
    if "db_session" not in g:
        g.db_session = Session(engine(), expire_on_commit=False)
    result: Session = g.db_session
    return result


def after_request_transaction(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the request's session is closed (its locks released)."""
    g.setdefault("after_session", []).append(callback)


def _close_session(_exc: BaseException | None) -> None:
    db_session: Session | None = g.pop("db_session", None)
    if db_session is not None:
        db_session.rollback()
        db_session.close()
    for callback in g.pop("after_session", []):
        callback()


@contextmanager
def session_scope(bind: Engine | None = None) -> Iterator[Session]:
    """A session outside a request (CLI, worker): commits on success, rolls back on error."""
    with Session(bind or engine(), expire_on_commit=False) as db_session:
        try:
            yield db_session
            db_session.commit()
        except BaseException:
            db_session.rollback()
            raise


# --- a database that cannot write -------------------------------------------------------------

SQLITE_FULL = 13  # "database or disk is full" (also a file past PRAGMA max_page_count)
SQLITE_READONLY = 8
SQLITE_BUSY = 5
PG_DISK_FULL = "53100"  # disk_full
PG_READ_ONLY = "25006"  # read_only_sql_transaction (a standby, default_transaction_read_only)
PG_BUSY = ("55P03", "57014")  # lock_not_available, query_canceled (a statement timeout)
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def write_failure(exc: BaseException) -> str | None:
    """Why a write failed, when the database (or its disk) says so: ``"disk_full"``,
    ``"read_only"`` or ``"busy"``; None for anything else.

    Looks through SQLAlchemy's wrapper (``DBAPIError.orig``) and the exceptions ``exc``
    was raised from. Disk full: SQLite's SQLITE_FULL, PostgreSQL's SQLSTATE 53100, or an
    OSError ENOSPC / EDQUOT (no space, quota exceeded) from anywhere.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        reason = _own_write_failure(current)
        if reason is not None:
            return reason
        if isinstance(current, DBAPIError):
            pending.append(current.orig)
        pending.extend((current.__cause__, current.__context__))
    return None


def is_disk_full(exc: BaseException) -> bool:
    return write_failure(exc) == "disk_full"


def _own_write_failure(exc: BaseException) -> str | None:
    if isinstance(exc, sqlite3.Error):
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        if code == SQLITE_FULL or "database or disk is full" in str(exc):
            return "disk_full"
        if code == SQLITE_READONLY:
            return "read_only"
        if code == SQLITE_BUSY:
            return "busy"
        return None
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str):
        if sqlstate == PG_DISK_FULL:
            return "disk_full"
        if sqlstate == PG_READ_ONLY:
            return "read_only"
        return "busy" if sqlstate in PG_BUSY else None
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
        return "disk_full"
    return None
