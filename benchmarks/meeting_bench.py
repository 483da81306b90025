"""The weekly meeting page and "Waiting for you" on the demo data: how long a release
manager waits for a week, and each person for their inbox.

Seeds ``relgov demo`` into a fresh database (SQLite in a temporary folder, and PostgreSQL
unless ``--sqlite-only``), logs in as the demo release manager and requests, ``--runs`` times
each after one warm-up request:

- this week's page, not opened: the agenda and every release's snapshot computed from live
  data (checklists, gates, incidents, adoption of the previous release);
- the same week as JSON (``GET /api/v1/meetings/{week}``);
- last week's page, closed: read back from the snapshots stored in the meeting;
- the list of meetings;
- "Waiting for you" (``GET /api/v1/me/inbox``) as the release manager, QA, support and the
  admin, and the dashboard (which shows it) as the release manager;
- a closed week's record as data (``GET /api/v1/meetings/{week}/record``).

Prints p50, p95 and max in milliseconds as the test client sees them (the whole Flask request:
session, queries, template) and writes ``## The weekly meeting page`` of
``docs/benchmarks.md`` (``--no-write``: print only).

    .venv/bin/python benchmarks/meeting_bench.py [--runs 30] [--sqlite-only] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import add_database_argument, percentile, scratch_database, write_section

SECTION = "## The weekly meeting page"
INBOX_NOTE = """An inbox reads the releases in draft or review, their manual items and
sign-offs, the next meeting's agenda (release managers only) and the person's open action
items: no snapshot, no gate evaluation. The dashboard's time is mostly its older "Releases in
progress" table (every active release's checklist statuses, gates included); the inbox adds
what its own request takes."""
# Profiled once (cProfile, SQLite, 10 requests of the live week, 2026-12-06); kept with the
# figures so that a re-run does not drop it.
WHERE = """Where the live week's time goes (profiled once, 2026-12-06): about 90 % in the seven
snapshots; within them about 65 % in `checklist.item_statuses`, mostly the three automatic
gate items, each of which evaluates all three promotion gates again
(`service/incidents/services.py` `_checklist` → `evaluate_gates`: the beta soak's holiday
calendar and the beta adoption query), then the snapshot's own gate evaluation. The page
before weekly meetings (`/meeting`) computed the same checklist statuses for every release in
progress, so the live week costs what it did plus the gates, incidents and adoption it now
shows; an opened or closed week reads its frozen snapshots instead."""


def measure(database_url: str, folder: Path, runs: int) -> tuple[dict[str, list[float]], str, str]:
    import logging

    from service import db, migrate
    from service.app import create_app
    from service.demo import seed_demo
    from service.meetings.services import current_week
    from service.settings import Settings
    from tests.builders import login

    logging.disable(logging.INFO)  # no access log line per request
    engine = db.make_engine(database_url)
    migrate.upgrade(engine)
    engine.dispose()
    app = create_app(
        Settings(
            env="test",
            instance_path=folder / "instance",
            database_url=database_url,
            secret_key="benchmark-secret-key-that-is-long-enough-0123",
            repo_cache=folder / "repos",
        )
    )
    seed_demo(app)
    with app.app_context():
        week = current_week(db.session())
    client = app.test_client()
    assert login(client, "rm@example.com", "demo-password").status_code == 302
    others = {}
    for email, password in [
        ("qa@example.com", "demo-password"),
        ("support@example.com", "demo-password"),
        ("admin@example.com", "demo-admin-password"),
    ]:
        others[email] = app.test_client()
        assert login(others[email], email, password).status_code == 302
    paths = {
        f"this week's page, not opened (live): GET /meetings/{week}": f"/meetings/{week}",
        f"the same week as JSON: GET /api/v1/meetings/{week}": f"/api/v1/meetings/{week}",
        f"last week's page, closed (snapshots): GET /meetings/{week.shifted(-1)}": (
            f"/meetings/{week.shifted(-1)}"
        ),
        "the list of meetings: GET /meetings": "/meetings",
        "Waiting for you, release manager: GET /api/v1/me/inbox": "/api/v1/me/inbox",
        "the dashboard with it, release manager: GET /": "/",
        f"a closed week's record: GET /api/v1/meetings/{week.shifted(-1)}/record": (
            f"/api/v1/meetings/{week.shifted(-1)}/record"
        ),
    }
    for email in others:
        paths[f"Waiting for you, {email.split('@')[0]}: GET /api/v1/me/inbox"] = (
            f"{email}|/api/v1/me/inbox"
        )
    held = []
    for who, caller in [("rm@example.com", client), *others.items()]:
        body = caller.get("/api/v1/me/inbox").get_json()
        counts = ", ".join(
            f"{n} {k.replace('_', ' ')}{'s' if n != 1 else ''}"
            for k, n in body["counts"].items()
            if n
        )
        held.append(f"{who.split('@')[0]} {counts or 'nothing'}")
    inboxes = (
        f"The inboxes held (next meeting {body['next_meeting']['week']}, "
        f"{body['next_meeting']['state']}): " + "; ".join(held) + "."
    )
    times: dict[str, list[float]] = {}
    for label, target in paths.items():
        who, _, path = target.rpartition("|")
        caller = others[who] if who else client
        assert caller.get(path).status_code == 200, path  # warm-up
        taken = []
        for _ in range(runs):
            start = time.perf_counter()
            response = caller.get(path)
            response.get_data()
            taken.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, path
        times[label] = taken
    app.extensions["relgov.engine"].dispose()
    return times, str(week), inboxes


def table(times: dict[str, list[float]]) -> str:
    rows = ["| request | p50 | p95 | max |", "|---|---:|---:|---:|"]
    for label, values in times.items():
        rows.append(
            f"| {label} | {percentile(values, 50):.0f} ms | {percentile(values, 95):.0f} ms "
            f"| {max(values):.0f} ms |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    add_database_argument(parser)
    args = parser.parse_args()
    results: dict[str, tuple[dict[str, list[float]], str, str]] = {}
    with tempfile.TemporaryDirectory() as folder:
        sqlite = Path(folder) / "sqlite"
        sqlite.mkdir()
        results["SQLite"] = measure(f"sqlite:///{sqlite / 'relgov.db'}", sqlite, args.runs)
        if not args.sqlite_only:
            pg = Path(folder) / "pg"
            pg.mkdir()
            with scratch_database(args.database_url, f"relgov_meeting_bench_{os.getpid()}") as url:
                results["PostgreSQL"] = measure(url, pg, args.runs)
    load = os.getloadavg()[0]
    parts = [
        SECTION,
        "",
        f"Measured with `.venv/bin/python benchmarks/meeting_bench.py` on {date.today()}: "
        "`relgov demo` seeded into a fresh database (3 apps, 18 releases, 7 closed weekly "
        "meetings, 300 stores, 1,018 devices, 150 days of adoption rollups, 6 incidents); "
        "logged in as the demo release manager (and QA, support and the admin for their "
        f"inboxes); {args.runs} requests each after one "
        "warm-up, timed around the test client (the whole Flask request: session, queries, "
        "snapshots, template). This week's page is not opened, so every release's snapshot "
        "is computed from live data on each request (7 releases: checklist, gates, open "
        "incidents, previous release's adoption from the rollups); a closed week reads its "
        f"stored snapshots. Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs shared with other work, load average {load:.1f} when it "
        "finished.",
        "",
    ]
    for name, (times, week, inboxes) in results.items():
        parts += [f"**{name}** (this week: {week})", "", table(times), "", inboxes, ""]
    parts += [INBOX_NOTE, "", WHERE, ""]
    text = "\n".join(parts)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
