"""``relgov db backup`` and ``relgov db restore``.

PostgreSQL: ``pg_dump --format=custom`` of the configured database and ``pg_restore --clean
--if-exists --no-owner --single-transaction`` back; the password goes to the tools in
``PGPASSWORD`` (never on the command line, where ``ps`` shows it). SQLite: the online backup
API (a consistent copy while the service keeps writing) in both directions.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import URL, make_url


class BackupError(RuntimeError):
    """The backup or restore could not be made; the message says why."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int


def default_path(folder: Path, url: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    suffix = "dump" if _dialect(make_url(url)) == "postgresql" else "sqlite3"
    return folder / f"relgov-{stamp}.{suffix}"


def backup(url: str, output: Path) -> BackupResult:
    """Write a backup of the database at ``url`` to ``output``."""
    parsed = make_url(url)
    output.parent.mkdir(parents=True, exist_ok=True)
    if _dialect(parsed) == "postgresql":
        command = [_tool("pg_dump"), "--format=custom", "--file", str(output)]
        _run([*command, *_conn_args(parsed)], parsed)
    elif _dialect(parsed) == "sqlite":
        _sqlite_copy(_sqlite_file(parsed, must_exist=True), output)
    else:
        raise BackupError(f"no backup for {parsed.get_backend_name()} databases")
    output.chmod(0o600)  # a backup holds password hashes and token hashes
    return BackupResult(output, output.stat().st_size)


def restore(url: str, source: Path) -> None:
    """Replace the contents of the database at ``url`` with the backup ``source``.

    Stop the web and worker processes first; run ``relgov db upgrade`` afterwards if the
    backup is from an older version.
    """
    if not source.is_file():
        raise BackupError(f"no backup file at {source}")
    parsed = make_url(url)
    if _dialect(parsed) == "postgresql":
        command = [_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges"]
        command += ["--single-transaction", *_conn_args(parsed, flag="--dbname"), str(source)]
        _run(command, parsed)
    elif _dialect(parsed) == "sqlite":
        with closing(sqlite3.connect(source)) as check:
            if check.execute("PRAGMA quick_check").fetchone() != ("ok",):
                raise BackupError(f"{source} is not a sound SQLite database")
        _sqlite_copy(source, _sqlite_file(parsed, must_exist=False))
    else:
        raise BackupError(f"no restore for {parsed.get_backend_name()} databases")


def _dialect(url: URL) -> str:
    return url.get_backend_name()


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed (install the PostgreSQL client tools)")
    return found


def _conn_args(url: URL, flag: str = "") -> list[str]:
    args = []
    if url.host:
        args += ["--host", url.host]
    if url.port:
        args += ["--port", str(url.port)]
    if url.username:
        args += ["--username", url.username]
    database = url.database or "postgres"
    # pg_dump takes the database as its last argument; pg_restore as --dbname.
    return [*args, flag, database] if flag else [*args, database]


def _run(command: list[str], url: URL) -> None:
    env = {"PGCONNECT_TIMEOUT": "10", **os.environ}  # child process environment
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        detail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
        raise BackupError(f"{Path(command[0]).name} failed: " + " / ".join(detail))


def _sqlite_file(url: URL, *, must_exist: bool) -> Path:
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError("an in-memory SQLite database has nothing to back up")
    path = Path(database)
    if must_exist and not path.is_file():
        raise BackupError(f"no database file at {path}")
    return path


def _sqlite_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
