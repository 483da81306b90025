"""Reproduction: the job worker's memory (VmRSS) over many Notion publish jobs, in-process.

Runs the ``notion_publish`` job handler through :func:`service.jobs.run_once`
``--publishes`` times (each after an edit of the notes, so every publish erases and rewrites
the page, about 130 blocks) against :class:`tests.fakes.notion_fake.NotionFake` served from a
*separate* process (its memory is not counted), on a PostgreSQL database of its own. Prints
VmRSS every ``--every`` publishes, the same after ``malloc_trim(0)`` (what glibc holds but
could give back), the Python heap traced by ``tracemalloc`` (with ``--trace``), and the
threads the process has.

``--stub`` replaces one piece of the job path to bisect it:

- ``keeper``: no lease-renewal thread per job;
- ``notion``: ``NotionPublisher.publish`` returns at once (no HTTP);
- ``client``: one ``httpx.Client`` for the whole run instead of one per publish.

    flock /tmp/relgov-bench.lock .venv/bin/python benchmarks/worker_memory.py \\
        [--publishes 300] [--every 20] [--stub keeper|notion|client ...] [--trace]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import add_database_argument, scratch_database  # noqa: E402

FAKE_MAIN = """
import json, sys
from tests.fakes.notion_fake import NotionFake
from tests.fakes.notion_fixtures import fake_publisher
with NotionFake() as fake:
    with fake_publisher(fake) as publisher:
        assert publisher.init_schema().ok
    print(json.dumps({"token": fake.token, "database_id": fake.database_id,
                      "base_url": fake.base_url}), flush=True)
    sys.stdin.read()  # until the parent closes it
"""


def note_text(version: str, edit: int) -> str:
    """Notes of about 130 blocks (as in the soak), with an edit marker that changes."""
    fixes = "".join(f"- Fix {n}: the register keeps receipt {n} right\n" for n in range(1, 121))
    return f"# {version}\n\n## Features\n\n- Soak feature\n\n## Fixes\n\n{fixes}- Edit {edit}\n"


def live_clients() -> int:
    """``httpx.Client`` objects alive (closed or not), before any collection."""
    import httpx

    return sum(1 for o in gc.get_objects() if type(o) is httpx.Client)


def rss_by_mapping(pid: str = "self") -> dict[str, float]:
    """RSS (MiB) of the main heap, the other anonymous mappings (thread arenas, pymalloc,
    stacks, mmap'd blocks) and file-backed mappings (libraries)."""
    totals = {"heap": 0.0, "anon": 0.0, "file": 0.0}
    kind = "anon"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        first = line.split(None, 1)[0]
        if "-" in first and not first.endswith(":"):
            fields = line.split()
            name = fields[5] if len(fields) > 5 else ""
            kind = "heap" if name == "[heap]" else "file" if name.startswith("/") else "anon"
        elif first == "Rss:":
            totals[kind] += int(line.split()[1]) / 1024
    return totals


def vm_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


_LIBC = ctypes.CDLL("libc.so.6")


def trimmed_rss_kib() -> int:
    """VmRSS after glibc returns the free memory it can (``malloc_trim(0)``)."""
    _LIBC.malloc_trim(0)
    return vm_rss_kib()


@contextmanager
def notion_fake() -> Iterator[dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", FAKE_MAIN],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def apply_stubs(stubs: list[str]) -> None:
    import httpx

    from release_notes import notion
    from service import jobs

    if "keeper" in stubs:
        jobs._LeaseKeeper.start = lambda self: None  # type: ignore[method-assign]
    if "notion" in stubs:

        def publish(self: Any, page: Any, **_: Any) -> Any:
            return notion.PublishResult(
                page_id="stub",
                url=None,
                action="updated",
                notes_hash=notion.notes_hash(page),
                blocks=0,
                requests=0,
                trashed_duplicates=(),
            )

        notion.NotionPublisher.publish = publish  # type: ignore[method-assign]
    if "client" in stubs:
        shared = httpx.Client()
        original = notion.NotionPublisher.__init__

        def init(self: Any, config: Any, **kwargs: Any) -> None:
            kwargs.setdefault("http_client", shared)
            original(self, config, **kwargs)
            shared.event_hooks["request"] = shared.event_hooks["request"][-1:]

        notion.NotionPublisher.__init__ = init  # type: ignore[method-assign]


WORKER_MAIN = """
import sys
sys.path.insert(0, {bench!r})
import worker_memory
worker_memory.worker_main({stubs!r}, fast={fast!r})
"""


def worker_main(stubs: list[str], *, fast: bool) -> None:
    """The ``relgov worker`` process of ``--process`` mode (stubs applied first)."""
    from release_notes import notion
    from service.cli import main as cli_main

    if fast:  # the service's limiter without its 2.5 requests/s
        notion.TokenBucket.__init__.__defaults__ = (1e6, 1e6)
    apply_stubs(stubs)
    report = Path(os.environ["WMEM_REPORT"])

    trim = not os.environ.get("WMEM_NO_TRIM")

    collect = not os.environ.get("WMEM_NO_GC")

    def on_usr1(_signum: int, _frame: Any) -> None:
        clients = live_clients()
        if collect:
            gc.collect()
        figures = {
            "rss": vm_rss_kib() / 1024,
            "maps": rss_by_mapping(),
            "trimmed": trimmed_rss_kib() / 1024 if trim else vm_rss_kib() / 1024,
            "objects": len(gc.get_objects()),
            "traced": tracemalloc.get_traced_memory()[0] / 2**20
            if tracemalloc.is_tracing()
            else None,
            "clients": clients,
        }
        report.write_text(json.dumps(figures))

    signal.signal(signal.SIGUSR1, on_usr1)
    if os.environ.get("WMEM_TRACE"):
        tracemalloc.start()
    sys.argv = ["relgov", "worker", "--poll", "0.2"]
    cli_main()


def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def worker_figures(pid: int, report: Path) -> dict[str, Any]:
    """Ask the worker (SIGUSR1) for its VmRSS before and after malloc_trim and its objects."""
    report.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            figures: dict[str, Any] = json.loads(report.read_text())
            return figures
        except (OSError, ValueError):
            time.sleep(0.05)
    raise RuntimeError("the worker did not report its memory")


def proc_threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def seed(url: str, settings: Any) -> tuple[Any, list[int]]:
    from service import db, migrate
    from service.app import create_app
    from service.releases.models import App, Release, ReleaseNote

    engine = db.make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    app = create_app(settings)
    with app.app_context(), db.session_scope() as session:
        pos = App(slug="pos", name="POS register", auto_publish=True)
        session.add(pos)
        session.flush()
        ids = []
        for n in range(4):
            release = Release(app_id=pos.id or 0, version=f"3.{n}.0", created_by="user:b@x.test")
            session.add(release)
            session.flush()
            session.add(
                ReleaseNote(
                    release_id=release.id or 0,
                    generated_markdown=note_text(release.version, 0),
                    commit_count=120,
                    breaking_count=0,
                )
            )
            ids.append(release.id or 0)
    return app, ids


def ask_publish(app: Any, release_id: int, n: int) -> int:
    """Edit the notes of ``release_id`` and queue their publishing; the job's id."""
    from sqlmodel import select

    from service import db
    from service.publishing import notion_publish
    from service.releases.models import Release, ReleaseNote

    with app.app_context(), db.session_scope() as session:
        release = session.get(Release, release_id)
        assert release is not None
        note = session.exec(select(ReleaseNote).where(ReleaseNote.release_id == release.id)).one()
        note.generated_markdown = note_text(release.version, n + 1)
        session.add(note)
        job = notion_publish.request_publish(session, release, actor="user:b@x.test")
        session.flush()
        return job.id or 0


def run_process(args: argparse.Namespace, url: str, fake: dict[str, str]) -> list[dict[str, Any]]:
    """``relgov worker`` in its own process (as in the soak); RSS read from /proc."""
    import tempfile

    from service import db
    from service.jobs.models import Job
    from service.settings import Settings

    folder = Path(tempfile.mkdtemp(prefix="wmem-"))
    (folder / "prom").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELGOV_", "NOTION_"))} | {
        "RELGOV_ENV": "production",
        "RELGOV_SECRET_KEY": "worker-memory-benchmark-secret-0123456789abcdef",
        "RELGOV_DATABASE_URL": url,
        "RELGOV_INSTANCE_PATH": str(folder),
        "RELGOV_IN_PROCESS_WORKER": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(folder / "prom"),
        "PYTHONPATH": str(ROOT),
        "NOTION_TOKEN": fake["token"],
        "NOTION_DATABASE_ID": fake["database_id"],
        "NOTION_BASE_URL": fake["base_url"],
        "WMEM_REPORT": str(folder / "report.json"),
    }
    if args.trace:
        env["WMEM_TRACE"] = "1"
    if args.no_trim:
        env["WMEM_NO_TRIM"] = "1"
    if args.no_gc:
        env["WMEM_NO_GC"] = "1"
    for item in args.env:
        key, _, value = item.partition("=")
        if value:
            env[key] = value
        else:
            env.pop(key, None)
    settings = replace(
        Settings.from_env({"RELGOV_ENV": "test", "RELGOV_INSTANCE_PATH": str(folder)}),
        database_url=url,
        notion_token=fake["token"],
        notion_database_id=fake["database_id"],
        notion_base_url=fake["base_url"],
    )
    app, ids = seed(url, settings)
    code = WORKER_MAIN.format(
        bench=str(ROOT / "benchmarks"), stubs=args.stub, fast=not args.real_limiter
    )
    log = (folder / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        time.sleep(3)
        for n in range(args.publishes + 1):
            if n % args.every == 0:
                row = {
                    "publishes": n,
                    "os_threads": proc_threads(worker.pid),
                    "seconds": time.perf_counter() - started,
                } | worker_figures(worker.pid, folder / "report.json")
                rows.append(row)
                traced = f"{row['traced']:8.2f}" if row["traced"] is not None else "       -"
                maps = "  ".join(f"{k} {v:6.1f}" for k, v in row["maps"].items())
                print(
                    f"{n:5d} {row['rss']:8.1f} {row['trimmed']:8.1f} {traced} "
                    f"{row['os_threads']:4d} {row['objects']:8d} {row['seconds']:7.1f}  {maps}  "
                    f"httpx clients alive {row['clients']}",
                    flush=True,
                )
            if n == args.publishes:
                break
            job_id = ask_publish(app, ids[n % len(ids)], n)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with app.app_context(), db.session_scope() as session:
                    job = session.get(Job, job_id)
                    state = job.state if job else "?"
                if state not in ("queued", "running"):
                    break
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker exited; see {folder}/worker.log")
                time.sleep(0.05)
            if state != "succeeded":
                raise RuntimeError(f"job {job_id} ended {state}; see {folder}/worker.log")
            time.sleep(args.pause)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log.close()
        with app.app_context():
            db.engine().dispose()
    return rows


def run(args: argparse.Namespace, url: str, fake: dict[str, str]) -> list[dict[str, Any]]:
    from service import jobs
    from service.settings import Settings
    from tests.fakes.notion_fixtures import instant_limiter

    settings = replace(
        Settings.from_env(
            {"RELGOV_ENV": "test", "RELGOV_INSTANCE_PATH": f"/tmp/wmem-{os.getpid()}"}
        ),
        database_url=url,
        notion_token=fake["token"],
        notion_database_id=fake["database_id"],
        notion_base_url=fake["base_url"],
    )
    app, ids = seed(url, settings)
    if not args.real_limiter:
        app.extensions["relgov.notion_limiter"] = instant_limiter()  # no waiting at 3 requests/s
    apply_stubs(args.stub)

    def publish_once(n: int) -> None:
        ask_publish(app, ids[n % len(ids)], n)
        job = jobs.run_once(app)
        assert job is not None and job.state == "succeeded", job and job.last_error

    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    if args.trace:
        tracemalloc.start()
    for n in range(args.publishes + 1):
        if n % args.every == 0:
            clients = live_clients()
            if not args.no_gc:
                gc.collect()
            rss = vm_rss_kib()
            row = {
                "publishes": n,
                "rss": rss / 1024,
                "trimmed": (vm_rss_kib() if args.no_trim else trimmed_rss_kib()) / 1024,
                "traced": tracemalloc.get_traced_memory()[0] / 2**20 if args.trace else None,
                "threads": threading.active_count(),
                "os_threads": len(os.listdir("/proc/self/task")),
                "objects": len(gc.get_objects()),
                "seconds": time.perf_counter() - started,
                "clients": clients,
            }
            rows.append(row)
            traced = f"{row['traced']:8.2f}" if args.trace else "       -"
            print(
                f"{n:5d} {row['rss']:8.1f} {row['trimmed']:8.1f} {traced} "
                f"{row['os_threads']:4d} {row['objects']:8d} {row['seconds']:7.1f}  "
                f"httpx clients alive {clients}",
                flush=True,
            )
        if n < args.publishes:
            publish_once(n)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_database_argument(parser)
    parser.add_argument("--publishes", type=int, default=300)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument(
        "--stub", action="append", default=[], choices=["keeper", "notion", "client"]
    )
    parser.add_argument(
        "--real-limiter", action="store_true", help="the service's 3 requests/s (slow)"
    )
    parser.add_argument(
        "--process",
        action="store_true",
        help="run the jobs in a `relgov worker` process (production settings, as the soak)",
    )
    parser.add_argument(
        "--env", action="append", default=[], help="KEY=VALUE for the worker (KEY= drops it)"
    )
    parser.add_argument("--no-trim", action="store_true", help="no malloc_trim(0) when sampling")
    parser.add_argument("--no-gc", action="store_true", help="no gc.collect() before sampling")
    parser.add_argument("--pause", type=float, default=0.0, help="s between publishes (--process)")
    parser.add_argument("--trace", action="store_true", help="tracemalloc the Python heap")
    args = parser.parse_args(argv)
    print(f"load average: {Path('/proc/loadavg').read_text().split()[:3]}; stubs: {args.stub}")
    print("publishes  RSS MiB  trimmed  traced  thr  objects  seconds")
    database = scratch_database(args.database_url, f"relgov_wmem_{os.getpid()}")
    with database as url, notion_fake() as fake:
        rows = (run_process if args.process else run)(args, url, fake)
    first = next((r for r in rows if r["publishes"] >= args.every), rows[0])
    last = rows[-1]
    span = max(1, last["publishes"] - first["publishes"])
    trimmed = (
        f" (after malloc_trim: {(last['trimmed'] - first['trimmed']) * 1024 / span:+.1f})"
        if last["trimmed"] is not None
        else ""
    )
    print(
        f"after {first['publishes']} publishes {first['rss']:.1f} MiB -> {last['rss']:.1f} MiB "
        f"after {last['publishes']}: {(last['rss'] - first['rss']) * 1024 / span:+.1f} KiB a "
        f"publish{trimmed}"
    )
    print(f"load average at the end: {Path('/proc/loadavg').read_text().split()[:3]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
