"""What the benchmark scripts share: servers on loopback, scratch PostgreSQL databases,
percentiles and their section of ``docs/benchmarks.md``.

Each script puts the repository root on ``sys.path`` and imports this as
``benchmarks._common`` (the test suite loads some scripts by path, with the root on the
path too).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
DEFAULT_PG = "postgresql+psycopg://relgov:relgov-ci@127.0.0.1:5432/postgres"


# --- servers ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def gunicorn_command(target: str, port: int) -> list[str]:
    """gunicorn with 2 sync workers serving ``target`` on loopback ``port``."""
    return [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "--workers",
        "2",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        target,
    ]


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the process group of ``process`` (started with ``start_new_session=True``)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


# --- databases --------------------------------------------------------------------------


def add_database_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=os.environ.get("RELGOV_BENCH_DATABASE_URL", DEFAULT_PG),
        help="a PostgreSQL server (any database on it); the script makes its own database",
    )


def create_database(server_url: str, name: str) -> str:
    """The URL of database ``name`` on the server of ``server_url``, dropped and made afresh."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    admin = create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    admin = create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def scratch_database(server_url: str, name: str) -> Iterator[str]:
    """A fresh database ``name`` for the time of the ``with``; dropped at the end."""
    url = create_database(server_url, name)
    try:
        yield url
    finally:
        drop_database(server_url, name)


# --- the report ---------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def write_section(section: str, text: str, doc_path: Path = DOC) -> None:
    """Replace the ``section`` heading of ``doc_path`` and all up to the next ``## ``
    heading with ``text`` (re-read just before writing); append it when it is not there."""
    doc = doc_path.read_text(encoding="utf-8") if doc_path.exists() else "# Benchmarks\n"
    start = doc.find(section)
    if start == -1:
        doc = doc.rstrip("\n") + "\n\n" + text
    else:
        end = doc.find("\n## ", start + len(section))
        rest = "" if end == -1 else doc[end + 1 :]
        doc = doc[:start] + text + ("\n" + rest if rest else "")
    doc_path.write_text(doc, encoding="utf-8")
