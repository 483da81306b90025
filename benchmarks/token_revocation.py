"""Benchmark: how long a revoked token is still accepted, per gunicorn worker.

Starts the service (``wsgi:app``, production settings, heartbeats queued as in production)
under gunicorn with 2 sync workers on loopback, on a SQLite file and on PostgreSQL
(``--database-url``, a database ``relgov_revocation`` made afresh; ``--sqlite-only`` skips
it). Each worker's answers carry its pid (a WSGI wrapper around ``wsgi:app``, outside the
heartbeat fast path), so every answer is attributed to the worker that gave it.

Each trial issues a new ``heartbeats:write`` token, and driver processes send single
heartbeats with it back to back. Once both workers have answered it with 2xx for
``--warm`` seconds (the token is in both workers' caches, the fast path answering), this
process, another than the workers, revokes the token as ``relgov tokens revoke`` does (the
app built in this process, ``service.auth.revoke_token`` in its ORM session) and notes the
time its commit returned.
The drivers go on for ``--after`` seconds. For each worker the trial reports the requests
sent after the commit that it still answered 2xx, and how long after the commit the last of
them was answered (0 when none). Targets: revocation takes effect in every worker within
1 s; no extra query per heartbeat (the heartbeat benchmark measures the rate).

    .venv/bin/python benchmarks/token_revocation.py [--trials 5] [--clients 3] [--after 7]
        [--sqlite-only] [--no-write]

Writes the ``## Token revocation`` section of ``docs/benchmarks.md`` up to its END marker
(notes below the marker stay).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import (  # noqa: E402
    DOC,
    add_database_argument,
    create_database,
    drop_database,
    free_port,
    gunicorn_command,
    stop,
)

SECTION = "## Token revocation"
END = "<!-- end of token_revocation.py output -->"
COMMAND = ".venv/bin/python benchmarks/token_revocation.py"
SECRET = "benchmark-secret-key-0123456789-abcdefghij"
STORES, DEVICES = 50, 500
TARGET_S = 1.0

# Around the service: each answer says which worker gave it (outside the fast path, which
# wraps the Flask app inside ``wsgi:app``).
WRAPPER = """
import os
from wsgi import app as _service

def app(environ, start_response):
    def start(status, headers, exc_info=None):
        headers.append(("X-Worker", str(os.getpid())))
        return start_response(status, headers, exc_info)
    return _service(environ, start)
"""


def prepare(url: str) -> None:
    from sqlmodel import Session

    from service import db, migrate
    from service.releases.models import App
    from tests.builders import make_user
    from version_monitor.simulate import build_fleet

    engine = db.make_engine(url)
    migrate.upgrade(engine)
    with Session(engine) as session:
        now = datetime.now(UTC).replace(tzinfo=None)
        build_fleet(session, stores=STORES, devices=DEVICES, now=now)
        session.add(App(slug="pos", name="POS"))
        make_user(session, email="bench@example.com", name="Bench")
        session.commit()
    engine.dispose()


def _env(url: str, tmp: Path) -> dict[str, str]:
    return {
        "RELGOV_ENV": "production",
        "RELGOV_SECRET_KEY": SECRET,
        "RELGOV_DATABASE_URL": url,
        "RELGOV_INSTANCE_PATH": str(tmp),
        "RELGOV_HEARTBEAT_RATE_LIMIT": "0",
        "RELGOV_LOG_LEVEL": "WARNING",
    }


def admin_app(url: str, tmp: Path) -> Any:
    """The service as a ``relgov`` command or another worker builds it (its ORM listeners
    included): the other process that issues and revokes the tokens."""
    from service.app import create_app
    from service.settings import Settings

    return create_app(Settings.from_env(_env(url, tmp)))


def issue(app: Any, name: str) -> tuple[int, str]:
    from sqlmodel import select

    from service import db
    from service.auth import issue_token
    from service.models import User

    with app.app_context(), db.session_scope() as session:
        admin = session.exec(select(User).where(User.email == "bench@example.com")).one()
        token, raw = issue_token(
            session=session, name=name, scopes=["heartbeats:write"], creator=admin
        )
        session.flush()
        token_id = token.id or 0
    return token_id, raw


def revoke(app: Any, token_id: int) -> tuple[float, float]:
    """Revoke the token as ``relgov tokens revoke`` does; (wall time before, after commit)."""
    from sqlmodel import select

    from service import db
    from service.auth import revoke_token
    from service.models import ApiToken, User

    with app.app_context():
        with db.session_scope() as session:
            admin = session.exec(select(User).where(User.email == "bench@example.com")).one()
            token = session.get(ApiToken, token_id)
            assert token is not None
            started = time.time()
            revoke_token(session=session, token=token, actor=admin)
        committed = time.time()  # session_scope commits on leaving
    return started, committed


def drive(port: int, raw: str, client: int, stop_at: Any, progress: Any, out: Any) -> None:
    """Heartbeats back to back until ``stop_at`` (a shared wall time) is set and passed;
    puts each worker that answered 2xx for the first time on ``progress`` and, at the end,
    [(sent, answered, status, worker)] on ``out``."""
    seen: set[str] = set()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {raw}"}
    base = datetime.now(UTC) - timedelta(hours=1)
    rows: list[tuple[float, float, int, str]] = []
    n = 0
    while True:
        until = stop_at.value
        if until and time.time() >= until:
            break
        device = (client * 1000 + n) % DEVICES
        body = json.dumps(
            {
                "device_id": f"rev-{client}-{device:04d}",
                "store_id": f"S{device % STORES + 1:05d}",
                "app": "pos",
                "version": "3.1.0",
                "device_kind": "pos",
                "sent_at": (base + timedelta(milliseconds=n)).isoformat(),
            }
        )
        n += 1
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        sent = time.time()
        try:
            conn.request("POST", "/api/v1/heartbeats", body, headers)
            response = conn.getresponse()
            response.read()
            answered = time.time()
            worker = response.getheader("X-Worker", "?")
            rows.append((sent, answered, response.status, worker))
            if 200 <= response.status < 300 and worker not in seen:
                seen.add(worker)
                progress.put(worker)
        except (OSError, http.client.HTTPException):
            rows.append((sent, time.time(), 0, "?"))
        finally:
            conn.close()
    out.put(rows)


def start_server(url: str, tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    (tmp / "revocation_app.py").write_text(WRAPPER)
    (tmp / "prom").mkdir(exist_ok=True)
    env = (
        os.environ
        | _env(url, tmp)
        | {
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom"),
            "PYTHONPATH": f"{tmp}{os.pathsep}{ROOT}",
        }
    )
    port = free_port()
    process = subprocess.Popen(
        gunicorn_command("revocation_app:app", port), cwd=ROOT, env=env, start_new_session=True
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, port
        except OSError:
            time.sleep(0.2)
    stop(process)
    raise RuntimeError("gunicorn did not start")


def trial(app: Any, port: int, n: int, args: argparse.Namespace) -> dict[str, Any]:
    token_id, raw = issue(app, f"revocation-{n}")
    stop_at: Any = multiprocessing.Value("d", 0.0)
    progress: Any = multiprocessing.Queue()
    out: Any = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=drive, args=(port, raw, c, stop_at, progress, out))
        for c in range(args.clients)
    ]
    for p in procs:
        p.start()
    answering: set[str] = set()
    while len(answering) < 2:  # both workers answer the token (it is in both caches)
        answering.add(progress.get(timeout=60))
    time.sleep(args.warm)
    started, committed = revoke(app, token_id)
    stop_at.value = committed + args.after
    rows = [row for _ in procs for row in out.get(timeout=args.after + 60)]
    for p in procs:
        p.join(timeout=30)
    workers = sorted({w for _, _, _, w in rows if w != "?"})
    warm = {w for s, _, status, w in rows if s < started and 200 <= status < 300}
    if len(warm) < 2:
        statuses = sorted({(status, w) for _, _, status, w in rows})
        raise SystemExit(
            f"trial {n}: only {len(warm)} worker(s) answered before the revoke "
            f"({len(rows)} requests; statuses and workers: {statuses[:10]})"
        )
    per_worker = {}
    for worker in workers:
        mine = [r for r in rows if r[3] == worker]
        accepted = [a for s, a, status, _ in mine if s >= committed and 200 <= status < 300]
        sent_after = sum(1 for s, _, _, _ in mine if s >= committed)
        refused_late = [status for s, _, status, _ in mine if s >= committed + args.after - 1]
        per_worker[worker] = {
            "lag_s": max((a - committed for a in accepted), default=0.0),
            "accepted": len(accepted),
            "sent_after": sent_after,
            "all_refused_at_end": all(status == 401 for status in refused_late),
        }
    errors = sum(1 for r in rows if r[2] == 0)
    return {
        "commit_ms": (committed - started) * 1000,
        "workers": per_worker,
        "requests": len(rows),
        "errors": errors,
    }


def bench(label: str, url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    prepare(url)
    tmp = Path(tempfile.mkdtemp(prefix="relgov-revocation-"))
    server, port = start_server(url, tmp)
    app = admin_app(url, tmp / "admin")
    results = []
    try:
        for n in range(args.trials):
            result = trial(app, port, n, args)
            lags = [w["lag_s"] for w in result["workers"].values()]
            accepted = sum(w["accepted"] for w in result["workers"].values())
            sent = sum(w["sent_after"] for w in result["workers"].values())
            print(
                f"{label} trial {n + 1}: still accepted {accepted} of {sent} requests sent after "
                f"the commit; per worker up to "
                + ", ".join(f"{lag:.3f} s" for lag in lags)
                + f" after it (commit took {result['commit_ms']:.1f} ms; "
                f"{result['requests']} requests, {result['errors']} connection errors)"
            )
            results.append(result)
    finally:
        stop(server)
        app.extensions["relgov.engine"].dispose()
    return results


def summary_row(label: str, results: list[dict[str, Any]]) -> str:
    lags = [w["lag_s"] for r in results for w in r["workers"].values()]
    accepted = sum(w["accepted"] for r in results for w in r["workers"].values())
    sent = sum(w["sent_after"] for r in results for w in r["workers"].values())
    refused = all(w["all_refused_at_end"] for r in results for w in r["workers"].values())
    worst = max(lags)
    mark = "✓" if worst <= TARGET_S else f"✗ (target {TARGET_S:g} s)"
    per_trial = " / ".join(f"{max(w['lag_s'] for w in r['workers'].values()):.2f}" for r in results)
    return (
        f"| {label} | {len(results)} | {worst:.3f} s {mark} | {per_trial} "
        f"| {accepted:,} of {sent:,} | {'yes' if refused else '**no**'} |"
    )


def write_section(text: str) -> None:
    """Replace SECTION up to END (notes after END, up to the next section, stay)."""
    doc = DOC.read_text(encoding="utf-8")
    block = text.rstrip("\n") + "\n" + END + "\n"
    start = doc.find(SECTION)
    if start == -1:
        DOC.write_text(doc.rstrip("\n") + "\n\n" + block, encoding="utf-8")
        return
    nxt = doc.find("\n## ", start + len(SECTION))
    end = len(doc) if nxt == -1 else nxt + 1
    marker = doc.find(END, start, end)
    cut = end if marker == -1 else marker + len(END) + 1
    rest = doc[cut:end] if marker != -1 else ("\n" if nxt != -1 else "")
    DOC.write_text(doc[:start] + block + rest + doc[end:], encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--clients", type=int, default=3, help="driver processes")
    parser.add_argument("--warm", type=float, default=2.0, help="seconds before the revoke")
    parser.add_argument("--after", type=float, default=7.0, help="seconds after the revoke")
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    add_database_argument(parser)
    args = parser.parse_args()

    rows = []
    folder = Path(tempfile.mkdtemp(prefix="relgov-revocation-db-"))
    sqlite = bench("SQLite (WAL file)", f"sqlite:///{folder / 'revocation.db'}", args)
    rows.append(summary_row("SQLite (WAL file)", sqlite))
    if not args.sqlite_only:
        name = "relgov_revocation"
        try:
            pg = bench("PostgreSQL", create_database(args.database_url, name), args)
        finally:
            drop_database(args.database_url, name)
        rows.append(summary_row("PostgreSQL", pg))

    text = "\n".join(
        [
            SECTION,
            "",
            f"`{COMMAND}` ({datetime.now(UTC):%Y-%m-%d}; gunicorn 2 sync workers on loopback, "
            "production settings with heartbeats queued (`RELGOV_HEARTBEAT_FLUSH_MS` 50), "
            f"{args.clients} driver processes sending single heartbeats back to back with one "
            f"token; after {args.warm:g} s, with both workers answering it from the fast path, "
            "another process revokes the token (as `relgov tokens revoke` does) and the "
            f"drivers go on for {args.after:g} s). *Accepted after* = requests sent after the "
            "revoke's commit that a worker still answered 2xx; *longest* = the latest such "
            "answer, after the commit, over both workers; target ≤ 1 s.",
            "",
            "| database | trials | longest a worker accepted after the commit "
            "| per trial, s | accepted after / sent after | every worker refusing (401) "
            "in the last second |",
            "|---|---:|---:|---|---:|---|",
            *rows,
            "",
        ]
    )
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
