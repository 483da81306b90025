"""Real ``relgov worker`` processes: a worker killed (SIGKILL) in the middle of a publish
leaves the job to the next worker once its lease runs out, and the release ends up published
once; two workers started together never run the same job.

The workers are subprocesses on the test's database (a SQLite file, or a per-test
PostgreSQL database with RELGOV_TEST_DATABASE_URL) and talk to the Notion fake of this
process over loopback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from service import db, jobs
from service.jobs.models import Job
from service.releases.models import ReleaseNote
from tests.fakes.notion_fake import Fault, NotionFake
from tests.live_server import wait_for
from tests.service.publishing.conftest import approve, jobs_of, make_release

RELGOV = str(Path(sys.executable).with_name("relgov"))
ROOT = Path(__file__).resolve().parents[3]
LEASE_SECONDS = 2
# Long enough that the publisher appends blocks after creating the page (100 per request).
LONG_NOTE = "# 3.12.0\n\n## Fixes\n\n" + "".join(
    f"- Fix number {n} keeps the receipts right\n" for n in range(1, 181)
)


class Workers:
    """Starts worker subprocesses and makes sure none outlives the test."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env, self.folder = env, folder
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, name: str | None = None) -> subprocess.Popen[bytes]:
        name = name or f"worker{len(self.procs) + 1}"
        log = (self.folder / f"{name}.log").open("wb")
        cmd = args or (RELGOV, "worker", "--poll", "0.1")
        proc = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, index: int) -> str:
        return (self.folder / f"worker{index}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(database_url: str, notion: NotionFake, tmp_path: Path) -> Iterator[Workers]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RELGOV_", "NOTION_"))},
        "RELGOV_ENV": "test",
        "RELGOV_INSTANCE_PATH": str(tmp_path / "worker-instance"),
        "RELGOV_DATABASE_URL": database_url,
        "RELGOV_SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "RELGOV_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        "RELGOV_LOG_FORMAT": "json",
        "RELGOV_BASE_URL": "https://relgov.example.com",
        "NOTION_TOKEN": notion.token,
        "NOTION_DATABASE_ID": notion.database_id,
        "NOTION_BASE_URL": notion.base_url,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    pool = Workers(env, tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _bullets(notion: NotionFake, page_id: str) -> list[str]:
    texts = []
    for block in notion.block_tree(page_id):
        if block["type"] == "bulleted_list_item":
            rich = block["bulleted_list_item"]["rich_text"]
            texts.append("".join(part["plain_text"] for part in rich))
    return texts


def test_a_worker_killed_mid_publish_leaves_the_job_to_another_which_publishes_once(
    app, session, notion, workers
):
    release = make_release(session, markdown=LONG_NOTE)
    # Hold the first block append after Notion has applied it: the worker is mid-publish.
    notion.inject(Fault.slow(120, apply=True, method="PATCH", path=r"/v1/blocks/.+/children"))
    approve(session, release)
    [job] = jobs_of(session, release)

    first = workers.start()
    wait_for(lambda: any(r.fault == "slow" for r in list(notion.requests)), 60, "the held append")
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=10) == -signal.SIGKILL
    session.expire_all()
    killed = session.get(Job, job.id)
    assert killed.state == "running" and killed.attempts == 1
    killed_worker = killed.locked_by
    assert len(notion.live_pages()) == 1  # the page exists, half written

    workers.start()

    def finished() -> Job | None:
        session.expire_all()
        current = session.get(Job, job.id)
        return current if current.state in ("succeeded", "failed") else None

    done = wait_for(finished, 60, "the second worker to finish the job")
    assert done.state == "succeeded", done.last_error
    assert done.attempts == 2
    taken_over = [r for r in _json_lines(workers.log(2)) if r.get("job_id") == job.id]
    assert taken_over and killed_worker and str(first.pid) in killed_worker

    [page] = notion.live_pages()
    bullets = _bullets(notion, page["id"])
    expected = [f"Fix number {n} keeps the receipts right" for n in range(1, 181)]
    assert bullets == expected  # every line once, in order: nothing duplicated or lost
    assert [j.state for j in jobs_of(session, release)] == ["succeeded"]
    note = session.exec(select(ReleaseNote).where(ReleaseNote.release_id == release.id)).one()
    assert note.notion_page_id and note.notion_page_id.replace("-", "") == page["id"].replace(
        "-", ""
    )
    # The worker logs the outcome just after recording it: wait for the line.
    finished_lines = wait_for(
        lambda: [
            r
            for r in _json_lines(workers.log(2))
            if r.get("job_id") == job.id and r.get("job_state")
        ],
        10,
        "the worker's log line for the job",
    )
    assert finished_lines[-1]["job_state"] == "succeeded"
    assert finished_lines[-1]["request_id"] == f"job-{job.id}"


WORKER_SCRIPT = """
import os, sys, time
from pathlib import Path
from service.app import create_app
from service import jobs

log = Path(sys.argv[1])
def touch(ctx):
    with log.open("a") as out:
        out.write(f"{ctx.job.id} {os.getpid()}\\n")
    time.sleep(0.005)
    return "touched"

app = create_app()
jobs.kinds_of(app).handler("test_touch", touch)
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
stats = jobs.run_worker(app, once=True)
print(stats.runs)
"""


def test_two_workers_started_together_run_each_job_exactly_once(app, workers, tmp_path):
    count = 80
    with app.app_context(), db.session_scope() as db_session:
        for n in range(count):
            jobs.enqueue(db_session, "test_touch", payload={"n": n})
    runs, go = tmp_path / "runs.txt", tmp_path / "go"
    procs = [
        workers.start(sys.executable, "-c", WORKER_SCRIPT, str(runs), str(go), name=f"worker{n}")
        for n in (1, 2)
    ]
    time.sleep(0.5)
    go.touch()
    for proc in procs:
        assert proc.wait(timeout=120) == 0, workers.log(procs.index(proc) + 1)[-2000:]
    lines = [line.split() for line in runs.read_text().splitlines()]
    job_ids = [int(job_id) for job_id, _pid in lines]
    assert sorted(job_ids) == sorted(set(job_ids)), "a job ran twice"
    with app.app_context(), db.session_scope() as db_session:
        touched = db_session.exec(select(Job).where(Job.kind == "test_touch")).all()
        states = {j.id: j.state for j in touched}
    assert len(job_ids) == count and set(job_ids) == set(states)
    assert set(states.values()) == {"succeeded"}
    assert len({pid for _job, pid in lines}) == 2, "both workers took jobs"
