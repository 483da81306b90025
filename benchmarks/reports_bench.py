"""Benchmark: every adoption report over a large fleet, p95 per report.

Seeds 20,000 stores, 100,000 devices and 365 days of history (a release a week, beta then
everyone, stragglers, offline devices) with ``version_monitor.simulate``, then times each
report as the API and pages call it, ``--runs`` times. SQLite file always; PostgreSQL too
when ``RELGOV_BENCH_PG_URL`` is set (database ``relgov_bench``, dropped and created).
Target: p95 ≤ 100 ms. Writes the ``### Reports`` part of the ``## Version adoption``
section of ``docs/benchmarks.md``.

Reports that keep a result per process are also timed computed afresh: their cache is
cleared before every timed run (that figure is the one held against the target). The
series is also timed with its JSON body made as the API makes it.

    .venv/bin/python benchmarks/reports_bench.py [--runs 20] [--stores 20000] [--devices 100000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import DOC, create_database  # noqa: E402

SECTION = "## Version adoption"
PART = "### Reports"
COMMAND = (
    "RELGOV_BENCH_PG_URL=… flock /tmp/relgov-bench.lock "
    ".venv/bin/python benchmarks/reports_bench.py"
)


def seed(url: str, *, stores: int, devices: int, now: datetime) -> tuple[Any, list[Any], float]:
    from sqlmodel import Session

    from service import db, migrate
    from version_monitor.simulate import build_fleet, simulate_adoption, weekly_releases

    engine = db.make_engine(url)
    migrate.upgrade(engine)
    start = now - timedelta(days=365)
    releases = weekly_releases(first=start.date() + timedelta(days=3), weeks=53, now=now)
    started = time.perf_counter()
    with Session(engine) as session:
        build_fleet(session, stores=stores, devices=devices, now=now)
        simulate_adoption(session, app="pos", releases=releases, start=start, now=now, seed=1)
        session.commit()
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    return engine, releases, time.perf_counter() - started


def _json_body(series: Any) -> str:
    """The series' JSON answer as ``service.api`` encodes it."""
    from service.api.operations import json_text

    return json_text(series.as_dict())


def _clear_kept_results() -> None:
    from version_monitor import reports

    reports._milestones.clear()


# Timed with the per-process cache cleared before every run.
AFRESH = {"time to 50/80/95 % (53 releases), computed afresh"}


def reports_to_time(now: datetime, releases: list[Any]) -> dict[str, Callable[[Any], Any]]:
    from version_monitor import reports

    # What the service passes: the newest release still in beta (for the beta check) and the
    # ones before it that went to every store in the last weeks (for "not rising").
    newest = releases[-1]
    spreading = [
        *[r for r in releases[:-1] if r.beta_at and r.beta_at > now - timedelta(days=24)],
        type(newest)(newest.version, newest.beta_at, None),
    ]
    latest = releases[-1].version
    end = now.date()
    return {
        "series, 365 days weekly (pages/API for a year)": lambda s: reports.adoption_over_time(
            s, app="pos", start=end - timedelta(days=364), end=end, releases=releases, step=7
        ),
        "series, 365 days daily (?step=day)": lambda s: reports.adoption_over_time(
            s, app="pos", start=end - timedelta(days=364), end=end, releases=releases
        ),
        "series, 150 days daily (pages/API default)": lambda s: reports.adoption_over_time(
            s, app="pos", start=end - timedelta(days=149), end=end, releases=releases
        ),
        "series, 365 days daily + JSON body (the API's answer)": lambda s: _json_body(
            reports.adoption_over_time(
                s, app="pos", start=end - timedelta(days=364), end=end, releases=releases
            )
        ),
        "series, 150 days daily + JSON body": lambda s: _json_body(
            reports.adoption_over_time(
                s, app="pos", start=end - timedelta(days=149), end=end, releases=releases
            )
        ),
        "census": lambda s: reports.census(s, app="pos", now=now, concurrently=True),
        "stragglers (min. version + 2 behind, 500 rows)": lambda s: reports.stragglers(
            s,
            app="pos",
            releases=releases,
            now=now,
            minimum_supported=releases[-10].version,
            max_behind=2,
        ),
        "offline devices (500 rows)": lambda s: reports.offline_devices(s, app="pos", now=now),
        "time to 50/80/95 % (53 releases), kept result": lambda s: reports.time_to_adoption(
            s, app="pos", releases=releases
        ),
        "time to 50/80/95 % (53 releases), computed afresh": lambda s: reports.time_to_adoption(
            s, app="pos", releases=releases
        ),
        "stalls (newest in beta + 3 rolled out)": lambda s: reports.detect_stalls(
            s, app="pos", releases=spreading, now=now, beta_target=0.8, beta_hours=24
        ),
        "beta adoption (release page, checklist)": lambda s: reports.beta_adoption(
            s, app="pos", version=latest, now=now
        ),
    }


def time_reports(
    engine: Any, now: datetime, releases: list[Any], runs: int
) -> dict[str, tuple[float, float]]:
    """p95 and median (ms) per report."""
    from sqlmodel import Session

    out: dict[str, tuple[float, float]] = {}
    for name, report in reports_to_time(now, releases).items():
        samples = []
        with Session(engine) as session:
            report(session)  # warm the connection and the page cache
            session.rollback()
            for _ in range(runs):
                if name in AFRESH:
                    _clear_kept_results()
                started = time.perf_counter()
                report(session)
                samples.append((time.perf_counter() - started) * 1000)
                session.rollback()
        samples.sort()
        p95, median = samples[max(0, round(len(samples) * 0.95) - 1)], samples[len(samples) // 2]
        out[name] = (p95, median)
        print(f"  {name}: p95 {p95:.1f} ms (median {median:.1f})", flush=True)
    return out


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def write_part(text: str) -> None:
    """Replace the head of ``PART`` in ``SECTION`` of docs/benchmarks.md (its heading, the
    command line and the table, up to the first blank line after the table) with ``text``;
    the notes written under the table stay. The file is re-read just before."""
    doc = DOC.read_text()
    start = doc.find(PART, doc.index(SECTION))
    if start == -1:
        raise SystemExit(f"no {PART!r} under {SECTION!r} in {DOC}: add the heading first")
    end = doc.find("\n\n", doc.index("\n|", start))
    end = len(doc) if end == -1 else end
    DOC.write_text(doc[:start] + text.rstrip("\n") + doc[end:])


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--stores", type=int, default=20_000)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)

    targets = [("SQLite", f"sqlite:///{Path(tempfile.mkdtemp()) / 'reports.db'}")]
    pg = os.environ.get("RELGOV_BENCH_PG_URL", "")
    if pg:
        targets.append(("PostgreSQL 15", create_database(pg, "relgov_bench")))
    else:
        print("PostgreSQL skipped (set RELGOV_BENCH_PG_URL)")
    results: dict[str, dict[str, tuple[float, float]]] = {}
    loads: list[str] = []
    for label, url in targets:
        engine, releases, seconds = seed(url, stores=args.stores, devices=args.devices, now=now)
        print(f"{label}: seeded in {seconds:.0f} s")
        loads.append(load_average())
        results[label] = time_reports(engine, now, releases, args.runs)
        loads.append(load_average())
        engine.dispose()

    labels = list(results)
    lines = [
        PART,
        "",
        f"`{COMMAND}` ({now:%Y-%m-%d}; {args.stores:,} stores, {args.devices:,} devices, 365 "
        f"days of history with a release a week; p95 of {args.runs} runs after one warm-up, "
        "in-process, each report as the API and pages call it; load average "
        f"{' → '.join(loads)} over the timed runs). Target p95 ≤ 100 ms.",
        "",
        "| report | " + " | ".join(f"{label} p95 ms | {label} median" for label in labels) + " |",
        "|---|" + "---:|---:|" * len(labels),
    ]
    for name in next(iter(results.values())):
        cells = []
        for label in labels:
            p95, median = results[label][name]
            mark = "" if p95 <= 100 else f" ✗ (+{p95 - 100:.0f})"
            cells.append(f"{_ms(p95)}{mark} | {_ms(median)}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_part(text)


if __name__ == "__main__":
    main()
