"""One engine per app, one session per request.

Requests commit once at the end of the view (``commit()``), so a request that fails part-way
leaves nothing half-written: the teardown rolls back whatever was not committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import Engine, event
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
            event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy own transactions (pysqlite's implicit BEGIN is disabled here and
    # issued in _sqlite_begin), so SELECT ... then UPDATE sees one consistent snapshot.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # A writer takes the write lock up front (IMMEDIATE): two writers queue on the busy
    # timeout instead of one failing with "database is locked" half-way through. Page
    # views (GET) stay deferred so they read the WAL snapshot without waiting on writers.
    if has_request_context() and request.method in ("GET", "HEAD"):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


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
