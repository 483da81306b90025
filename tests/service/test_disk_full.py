"""A full disk is reported as a full disk: 507 ``disk_full`` (JSON under /api/, a plain page
elsewhere), /healthz degraded, ``relgov_database_writable`` 0 and the disk-full counter.

On SQLite the disk fills for real as far as SQLite can tell: ``PRAGMA max_page_count`` at
the database's size, after a VACUUM, so a write that needs a page fails with SQLITE_FULL.
PostgreSQL's disk_full (SQLSTATE 53100) is mapped from the driver's own exception; a
read-only PostgreSQL database is real.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable, Iterator

import psycopg
import pytest
from flask import Flask
from prometheus_client import REGISTRY
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, select

from service import db, jobs, metrics
from service.errors import DISK_FULL
from service.models import HealthProbe
from service.releases.models import App, Release, ReleaseNote
from service.releases.notes import note_hash
from tests import builders
from tests.service.publishing.test_job_metrics import sample

NOTE = "# 3.12.0\n\n## Fixes\n\n- Receipts print the store name again\n"
DISK_FULL_ERRORS = "relgov_database_disk_full_errors_total"
BIG_EDIT = NOTE + "".join(f"- Fix number {n} keeps the receipts right\n" for n in range(5000))


def _release_with_note(session: Session) -> Release:
    app = App(slug="pos", name="POS register")
    session.add(app)
    session.commit()
    release = Release(app_id=app.id or 0, version="3.12.0", created_by="test")
    session.add(release)
    session.commit()
    session.add(ReleaseNote(release_id=release.id or 0, generated_markdown=NOTE))
    session.commit()
    return release


def _stored_note(session: Session, release: Release) -> str | None:
    session.expire_all()
    note = session.exec(select(ReleaseNote).where(ReleaseNote.release_id == release.id)).one()
    return note.edited_markdown


@pytest.fixture
def fill_disk(app: Flask, database_url: str) -> Iterator[Callable[[int | None], None]]:
    """``fill_disk(pages)``: every new connection of the app may grow the SQLite file to
    ``pages`` pages (None: its size now, with no free page left); ``fill_disk(None)`` after
    ``fill_disk(10**9)`` frees the space again."""
    engine = app.extensions["relgov.engine"]
    if engine.dialect.name != "sqlite":
        pytest.skip("fills a SQLite database (PostgreSQL's disk_full is mapped below)")
    path = engine.url.database
    limit: dict[str, int] = {}

    def cap(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        if limit:
            dbapi_connection.execute(f"PRAGMA max_page_count = {limit['pages']}")

    event.listen(engine, "connect", cap)

    def fill(pages: int | None) -> None:
        engine.dispose()
        if pages is None:
            with sqlite3.connect(path) as own:
                own.execute("VACUUM")  # no free page left inside the file
                pages = own.execute("PRAGMA page_count").fetchone()[0]
        limit["pages"] = pages

    yield fill
    event.remove(engine, "connect", cap)
    engine.dispose()


def test_a_full_sqlite_disk_is_507_disk_full_healthz_degraded_and_counted(
    app, client, session, admin, fill_disk, monkeypatch
):
    release = _release_with_note(session)
    headers = builders.api_headers(session, creator=admin, scopes=["read", "releases:write"])
    page = app.test_client()
    assert builders.login(page, admin.email).status_code == 302
    edit = {"markdown": BIG_EDIT, "loaded_hash": note_hash(NOTE)}
    counted = sample(client.get("/metrics").get_data(as_text=True), DISK_FULL_ERRORS) or 0.0

    fill_disk(None)

    # /healthz finds out by itself, before any request has failed: its probe cannot write.
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.json["status"] == "degraded"
    assert health.json["database"] == "disk_full" and health.json["writes"] == "disk_full"
    assert "disk is full" in health.json["detail"]
    body = client.get("/metrics").get_data(as_text=True)
    assert sample(body, "relgov_database_writable") == 0

    response = client.put(f"/api/v1/releases/{release.id}/notes", json=edit, headers=headers)
    assert response.status_code == 507, response.get_data(as_text=True)
    assert response.json == {"error": {"code": "disk_full", "message": DISK_FULL}}
    assert "Retry-After" not in response.headers
    assert _stored_note(session, release) is None  # nothing was saved
    # Reading still works.
    read = client.get(f"/api/v1/releases/{release.id}/notes", headers=headers)
    assert read.status_code == 200 and read.json["markdown"] == NOTE

    form = builders.post_form(page, f"/releases/{release.id}/notes", {**edit, "action": "save"})
    assert form.status_code == 507
    assert form.mimetype == "text/html"
    html = form.get_data(as_text=True)
    assert "507 · Disk full" in html and "disk is full, so nothing was saved" in html

    body = client.get("/metrics").get_data(as_text=True)
    assert sample(body, DISK_FULL_ERRORS) == counted + 2
    assert sample(body, "relgov_database_writable") == 0

    # Space is freed: the probe writes again; the failures seen a moment ago keep /healthz
    # degraded for DISK_FULL_WINDOW_SECONDS (a write may still fail only at commit).
    fill_disk(10**9)
    recent = client.get("/healthz")
    assert recent.status_code == 503 and "a write failed for lack of space" in recent.json["detail"]
    monkeypatch.setattr(metrics, "DISK_FULL_WINDOW_SECONDS", 0.0)
    health = client.get("/healthz")
    assert health.status_code == 200, health.json
    assert health.json["status"] == "ok" and health.json["writes"] == "ok"
    assert sample(client.get("/metrics").get_data(as_text=True), "relgov_database_writable") == 1
    response = client.put(f"/api/v1/releases/{release.id}/notes", json=edit, headers=headers)
    assert response.status_code == 200
    assert _stored_note(session, release) == BIG_EDIT


def test_healthz_probes_a_write_and_leaves_nothing_behind(app, client, session):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["status"] == "ok" and response.json["writes"] == "ok"
    assert sample(client.get("/metrics").get_data(as_text=True), "relgov_database_writable") == 1
    assert session.exec(select(HealthProbe)).all() == []


def _pg_error(exc: psycopg.Error) -> DBAPIError:
    """``exc`` wrapped the way SQLAlchemy wraps what psycopg raises."""
    return DBAPIError.instance("INSERT INTO device_state ...", {}, exc, psycopg.Error)


@pytest.fixture
def raising(app: Flask) -> Callable[[BaseException], None]:
    """``raising(exc)``: /api/v1/test-raise and /test-raise raise ``exc``."""
    box: dict[str, BaseException] = {}

    def throw() -> str:
        raise box["exc"]

    app.add_url_rule("/api/v1/test-raise", "test_raise_api", throw)
    app.add_url_rule("/test-raise", "test_raise_page", throw)
    return lambda exc: box.__setitem__("exc", exc)


@pytest.mark.parametrize(
    "exc",
    [
        _pg_error(
            psycopg.errors.DiskFull(
                'could not extend file "base/16384/16422": No space left on device'
            )
        ),
        OSError(errno.ENOSPC, "No space left on device"),
    ],
    ids=["postgresql-53100", "enospc"],
)
def test_postgresql_disk_full_and_enospc_are_507_not_unavailable(app, client, raising, exc):
    raising(exc)
    counted = sample(client.get("/metrics").get_data(as_text=True), DISK_FULL_ERRORS) or 0.0
    response = client.get("/api/v1/test-raise")
    assert response.status_code == 507
    assert response.json["error"]["code"] == "disk_full"
    page = client.get("/test-raise")
    assert page.status_code == 507 and "Disk full" in page.get_data(as_text=True)
    assert sample(client.get("/metrics").get_data(as_text=True), DISK_FULL_ERRORS) == counted + 2
    health = client.get("/healthz")
    assert health.status_code == 503 and health.json["database"] == "disk_full"


def test_other_failures_keep_their_answers(app, client, raising):
    """An unreachable database stays 503 ``database_unavailable``; other OSErrors are 500."""
    refused = psycopg.OperationalError("connection refused")
    raising(_pg_error(refused))
    response = client.get("/api/v1/test-raise")
    assert response.status_code == 503
    assert response.json["error"]["code"] == "database_unavailable"
    raising(FileNotFoundError(errno.ENOENT, "gone"))
    with pytest.raises(FileNotFoundError):  # the tests' app propagates what would be a 500
        client.get("/api/v1/test-raise")
    assert client.get("/healthz").status_code == 200


def test_the_write_failures_the_database_reports_are_told_apart():
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    cases: list[tuple[BaseException, str | None]] = [
        (full, "disk_full"),
        (_pg_error(psycopg.errors.DiskFull("no space")), "disk_full"),
        (_pg_error(psycopg.errors.ReadOnlySqlTransaction("read-only")), "read_only"),
        (_pg_error(psycopg.errors.LockNotAvailable("lock timeout")), "busy"),
        (_pg_error(psycopg.errors.UniqueViolation("duplicate")), None),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk_full"),
        (OSError(errno.EACCES, "Permission denied"), None),
        (RuntimeError("unrelated"), None),
    ]
    for exc, expected in cases:
        assert db.write_failure(exc) == expected, exc
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("writing the backup failed") from inner
    except RuntimeError as outer:
        assert db.is_disk_full(outer)


def test_a_read_only_postgresql_database_is_degraded(app, client, database_url):
    engine = app.extensions["relgov.engine"]
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's read-only transactions")
    name = engine.url.database
    with engine.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
        conn.commit()
    engine.dispose()
    try:
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json["database"] == "read_only"
        assert "read-only" in health.json["detail"]
    finally:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SET default_transaction_read_only = off"))
            conn.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
        engine.dispose()
    assert client.get("/healthz").status_code == 200


def test_a_job_refused_for_lack_of_space_is_counted(app):
    def full(ctx: jobs.JobContext) -> str:
        raise _pg_error(psycopg.errors.DiskFull("could not extend file: No space left on device"))

    jobs.kinds_of(app).handler("test_disk_full", full)
    with app.app_context(), db.session_scope() as session:
        jobs.enqueue(session, "test_disk_full")
    before = REGISTRY.get_sample_value(DISK_FULL_ERRORS) or 0.0
    ended = jobs.run_once(app, worker_id="w1")
    assert ended is not None and ended.state == "queued"  # retried later
    assert "DiskFull" in (ended.last_error or "")
    assert REGISTRY.get_sample_value(DISK_FULL_ERRORS) == before + 1
