"""Search at the scale of 10 years × 3 apps of weekly releases, on SQLite and PostgreSQL.

Builds a synthetic history (``tests/search_corpus.py``: 1,560 releases of 200 commits each,
312,000 commits in Japanese and English written by the real notes engine, 15 % of the notes
edited, incidents and meeting minutes) in a fresh migrated database of each kind (SQLite in a
temporary folder; PostgreSQL in its own scratch database, dropped at the end), then:

- times the full index build (``relgov search reindex``: ``index.rebuild``, one transaction);
- measures the index: its rows and the size of its table, its indexes and full-text indexes;
- times a varied query set (English words, Japanese words of 1–4 characters, 2-letter ASCII
  words, phrases, filtered queries), each query ``--repeat`` times after one warm-up: the
  service time of ``query.search`` (matching, ranking, the page of 20, highlighting, links)
  and of ``GET /api/v1/search`` through the Flask test client (plus token check and JSON);
- times the in-transaction update of one release's notes (``index.refresh``).

Writes the ``## Search`` section of ``docs/benchmarks.md``.

    .venv/bin/python benchmarks/search_bench.py [--weeks 520] [--commits 200] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import (  # noqa: E402
    DOC,
    add_database_argument,
    percentile,
    scratch_database,
    write_section,
)

SECTION = "## Search"
END = "<!-- end of search_bench.py output -->"  # notes below it stay when the section is rewritten
PG_DATABASE = "relgov_search_bench"
P95_TARGET_MS = 50.0
BUILD_TARGET_S = 60.0

# (category, query, filters)
QUERIES: list[tuple[str, str, dict[str, Any]]] = [
    ("English word", "refund", {}),
    ("English word", "coupon", {}),
    ("English word", "printer", {}),
    ("English word", "invoice", {}),
    ("English word", "discount", {}),
    ("English word", "allergen", {}),
    ("English words", "split bill", {}),
    ("English words", "card reader timeout", {}),
    ("English words", "offline mode", {}),
    ("English words", "tax rate", {}),
    ("Japanese, 2 chars", "会計", {}),
    ("Japanese, 2 chars", "返金", {}),
    ("Japanese, 2 chars", "取消", {}),
    ("Japanese, 2 chars", "割引", {}),
    ("Japanese, 2 chars", "同期", {}),
    ("Japanese, 2 chars", "伝票", {}),
    ("Japanese, 3 chars", "割り勘", {}),
    ("Japanese, 3 chars", "釣銭機", {}),
    ("Japanese, 3 chars", "レシート", {}),
    ("Japanese, 4 chars", "端数処理", {}),
    ("Japanese, 4 chars", "軽減税率", {}),
    ("Japanese, 4 chars", "予約一覧", {}),
    ("Japanese, 1 kanji", "税", {}),
    ("ASCII, 2 letters", "QR", {}),
    ("mixed", "会計 timeout", {}),
    ("mixed", "割り勘 端数", {}),
    ("phrase", '"split bill"', {}),
    ("phrase", '"receipt printer"', {}),
    ("phrase", '"QRコード決済"', {}),
    ("phrase", '"テーブル移動"', {}),
    ("filtered", "会計", {"app": "pos"}),
    ("filtered", "refund", {"kind": "fix"}),
    ("filtered", "割り勘", {"since": date(2022, 1, 1), "until": date(2023, 12, 31)}),
    ("filtered", "printer", {"app": "kds", "kind": "store"}),
    ("filtered", "税率", {"kind": "store"}),
    ("no match", "zzz unknown", {}),
]


@dataclass
class Measured:
    name: str
    releases: int = 0
    commits: int = 0
    load_s: float = 0.0
    build_s: float = 0.0
    documents: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # bytes
    base_bytes: int = 0  # the notes, incidents and minutes the index is built from
    service_ms: dict[str, list[float]] = field(default_factory=dict)
    # The CPU time of this process in query.search: on SQLite (in process) all of the work,
    # so about what the service time would be on an idle machine.
    cpu_ms: list[float] = field(default_factory=list)
    api_ms: list[float] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    refresh_ms: list[float] = field(default_factory=list)


def _sizes(connection: Any) -> tuple[dict[str, int], int]:
    from sqlalchemy import text

    if connection.dialect.name == "sqlite":
        rows = connection.execute(text("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")).all()
        by_name = {name: int(size) for name, size in rows}
        parts = {
            "table search_doc": by_name.get("search_doc", 0),
            "b-tree indexes": sum(v for k, v in by_name.items() if k.startswith("ix_search_doc")),
            "FTS5 trigram (search_fts)": sum(
                v for k, v in by_name.items() if k.startswith("search_fts")
            ),
            "FTS5 grams (search_gram_fts)": sum(
                v for k, v in by_name.items() if k.startswith("search_gram_fts")
            ),
        }
        base = sum(by_name.get(t, 0) for t in ("release_note", "incident", "meeting_record"))
        return parts, base
    sizes = {}
    for label, relation in (
        ("table search_doc (with TOAST)", "search_doc"),
        ("b-tree indexes", None),
        ("GIN pg_trgm (ix_search_doc_text_trgm)", "ix_search_doc_text_trgm"),
        ("GIN grams (ix_search_doc_grams)", "ix_search_doc_grams"),
    ):
        if relation == "search_doc":
            query = "SELECT pg_table_size('search_doc')"
        elif relation is None:
            query = (
                "SELECT coalesce(sum(pg_relation_size(indexrelid)), 0) FROM pg_index "
                "JOIN pg_class c ON c.oid = indexrelid WHERE indrelid = 'search_doc'::regclass "
                "AND c.relname NOT IN ('ix_search_doc_text_trgm', 'ix_search_doc_grams')"
            )
        else:
            query = f"SELECT pg_relation_size('{relation}')"
        sizes[label] = int(connection.execute(text(query)).scalar_one())
    base = int(
        connection.execute(
            text(
                "SELECT pg_total_relation_size('release_note') + "
                "pg_total_relation_size('incident') + pg_total_relation_size('meeting_record')"
            )
        ).scalar_one()
    )
    return sizes, base


def run(name: str, url: str, weeks: int, commits: int, repeat: int) -> Measured:
    from sqlalchemy import text
    from sqlmodel import Session

    from service import migrate
    from service.app import create_app
    from service.releases.models import ReleaseNote
    from service.search import index
    from service.search import query as search_query
    from service.settings import Settings
    from tests import search_corpus
    from tests.builders import make_token, make_user

    folder = Path(tempfile.mkdtemp(prefix="relgov-search-bench-"))
    settings = Settings(
        env="test",
        instance_path=folder / "instance",
        database_url=url,
        secret_key="benchmark-secret-key-that-is-long-enough-0123456789",
        repo_cache=folder / "repos",
    )
    app = create_app(settings)
    engine = app.extensions["relgov.engine"]
    migrate.upgrade(engine)
    result = Measured(name)

    print(f"[{name}] loading the history ...", flush=True)
    started = time.perf_counter()
    with Session(engine) as session:
        for chunk in search_corpus.build(weeks=weeks, commits_per_release=commits):
            search_corpus.insert_history(session.connection(), chunk)
            result.releases += len(chunk.releases)
            result.commits += chunk.commits
        user = make_user(session, email="bench@example.com", name="Bench")
        raw = make_token(session, creator=user, scopes=["read"], name="bench")
        session.commit()
        if engine.dialect.name == "postgresql":
            session.connection().execute(text("ANALYZE"))
            session.commit()
    result.load_s = time.perf_counter() - started
    print(
        f"[{name}] {result.releases:,} releases, {result.commits:,} commits loaded in "
        f"{result.load_s:.0f} s; building the index ...",
        flush=True,
    )

    with app.app_context():
        started = time.perf_counter()
        with Session(engine) as session:
            rebuilt = index.rebuild(session, index.sources_of().values())
            session.commit()
        result.build_s = time.perf_counter() - started
        result.documents = rebuilt.documents
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("VACUUM ANALYZE search_doc")
            )
    with engine.connect() as connection:
        result.sizes, result.base_bytes = _sizes(connection)
    print(f"[{name}] index built in {result.build_s:.1f} s; querying ...", flush=True)

    headers = {"Authorization": f"Bearer {raw}"}
    client = app.test_client()
    with app.test_request_context(), Session(engine) as session:
        for category, words, filters in QUERIES:
            parsed = search_query.parse(words)
            found = search_query.parse_filters(session, **filters)
            for attempt in range(repeat + 1):
                started, cpu = time.perf_counter(), time.process_time()
                results = search_query.search(session, parsed, found, index.sources_of(), limit=20)
                elapsed = (time.perf_counter() - started) * 1000
                if attempt:  # the first run warms the caches
                    result.service_ms.setdefault(f"{category}|{words}", []).append(elapsed)
                    result.cpu_ms.append((time.process_time() - cpu) * 1000)
            session.rollback()
            result.totals[words + str(filters)] = results.total
    for _category, words, filters in QUERIES:
        params = {"q": words, **{k: str(v) for k, v in filters.items()}}
        for attempt in range(repeat + 1):
            started = time.perf_counter()
            response = client.get("/api/v1/search", query_string=params, headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, response.get_data(as_text=True)
            if attempt:
                result.api_ms.append(elapsed)

    # The reaction's work when a release's notes change: one release of ``commits`` commits.
    with app.test_request_context(), Session(engine) as session:
        from sqlmodel import select

        release_ids = [
            n.release_id for n in session.exec(select(ReleaseNote).limit(repeat + 1)).all()
        ]
        session.rollback()
        for attempt, release_id in enumerate(release_ids):
            started = time.perf_counter()
            index.refresh(session, index.sources_of()["release"], release_id)
            session.commit()
            if attempt:
                result.refresh_ms.append((time.perf_counter() - started) * 1000)
    engine.dispose()
    return result


def _mib(value: int) -> str:
    return f"{value / 1024 / 1024:,.1f} MiB"


def report(results: list[Measured], weeks: int, commits: int, repeat: int) -> str:
    load = os.getloadavg()
    lines = [
        SECTION,
        "",
        f"Measured with `.venv/bin/python benchmarks/search_bench.py` on {date.today()}: "
        f"{weeks} weeks × 3 apps of weekly releases ({results[0].releases:,} releases), "
        f"{commits} commits each ({results[0].commits:,} commits, about half in Japanese: "
        "restaurant POS vocabulary, conventional subjects, bodies, `Release-Note:` trailers, "
        "notes written by the real notes engine, 15 % of them edited), an incident for "
        "about one release in three and each week's meeting minutes (a paragraph per app) "
        "(`tests/search_corpus.py`). Each query runs once to warm up, then "
        f"{repeat} times; *service time* is `query.search` in the process (matching, ranking, "
        "the page of 20 results, highlighting, links), *API* is `GET /api/v1/search` through "
        "the Flask test client (adds the token check and JSON). Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs shared with other jobs, load "
        f"average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} when it finished.",
        "",
        "| database | documents | full index build | index size | query p50 | query p95 "
        "| query max | API p95 | update one release |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        every = [v for values in r.service_ms.values() for v in values]
        p95 = percentile(every, 95)
        build_ok = "✓" if r.build_s <= BUILD_TARGET_S else "✗"
        p95_ok = "✓" if p95 <= P95_TARGET_MS else "✗"
        lines.append(
            f"| {r.name} | {sum(r.documents.values()):,} | {r.build_s:.1f} s {build_ok} "
            f"| {_mib(sum(r.sizes.values()))} | {percentile(every, 50):.1f} ms "
            f"| {p95:.1f} ms {p95_ok} | {max(every):.1f} ms | {percentile(r.api_ms, 95):.1f} ms "
            f"| {statistics.median(r.refresh_ms):.0f} ms |"
        )
    sqlite = [r for r in results if r.name == "SQLite"]
    if sqlite:
        cpu = sqlite[0].cpu_ms
        lines += [
            "",
            "The load on the machine stretches every wall-clock figure. On SQLite the whole "
            "search runs in the benchmark's process, so its CPU time is about what the "
            f"service time would be on an idle machine: p50 {percentile(cpu, 50):.1f} ms, "
            f"p95 {percentile(cpu, 95):.1f} ms, max {max(cpu):.1f} ms.",
        ]
    lines += [
        "",
        f"Targets: query p95 ≤ {P95_TARGET_MS:.0f} ms, full index build ≤ "
        f"{BUILD_TARGET_S:.0f} s. Documents per source: "
        + "; ".join(
            f"{r.name}: " + ", ".join(f"{k} {v:,}" for k, v in r.documents.items())
            for r in results[:1]
        )
        + ".",
        "",
        "Index size, part by part (the notes, incidents and minutes it is built from take "
        + ", ".join(f"{_mib(r.base_bytes)} on {r.name}" for r in results)
        + "):",
        "",
    ]
    for r in results:
        lines.append(f"- {r.name}: " + ", ".join(f"{k} {_mib(v)}" for k, v in r.sizes.items()))
    lines += ["", "Service time by query (median / max of the runs, ms; results found):", ""]
    header = "| category | query | " + " | ".join(r.name for r in results) + " | results |"
    lines += [header, "|---|---|" + "---:|" * len(results) + "---:|"]
    for category, words, filters in QUERIES:
        key = f"{category}|{words}"
        shown = words.replace("|", "\\|") + (
            " (" + ", ".join(f"{k}={v}" for k, v in filters.items()) + ")" if filters else ""
        )
        cells = [
            f"{statistics.median(r.service_ms[key]):.1f} / {max(r.service_ms[key]):.1f}"
            for r in results
        ]
        total = results[0].totals[words + str(filters)]
        lines.append(f"| {category} | `{shown}` | " + " | ".join(cells) + f" | {total:,} |")
    return "\n".join([*lines, "", END]) + "\n"


def _notes_below(doc_path: Path = DOC) -> str:
    """What the section holds below :data:`END` (people's notes on a run), to keep."""
    doc = doc_path.read_text(encoding="utf-8") if doc_path.exists() else ""
    start = doc.find(SECTION)
    if start == -1:
        return ""
    end = doc.find("\n## ", start + len(SECTION))
    section = doc[start:] if end == -1 else doc[start : end + 1]
    return section.split(END, 1)[1].lstrip("\n") if END in section else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--weeks", type=int, default=520)
    parser.add_argument("--commits", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print, leave the doc alone")
    add_database_argument(parser)
    args = parser.parse_args(argv)
    results = []
    if not args.skip_sqlite:
        folder = Path(tempfile.mkdtemp(prefix="relgov-search-sqlite-"))
        results.append(
            run("SQLite", f"sqlite:///{folder}/bench.db", args.weeks, args.commits, args.repeat)
        )
    if not args.skip_postgres:
        with scratch_database(args.database_url, PG_DATABASE) as url:
            results.append(run("PostgreSQL", url, args.weeks, args.commits, args.repeat))
    text = report(results, args.weeks, args.commits, args.repeat)
    print(text)
    if not args.no_write and len(results) == 2:
        notes = _notes_below()
        write_section(SECTION, text + ("\n" + notes if notes else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
