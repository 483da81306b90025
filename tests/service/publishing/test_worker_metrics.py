"""A real ``relgov worker`` serves its own /metrics (RELGOV_WORKER_METRICS_PORT): the jobs it
ran by kind and outcome, its failures, its claims, and when its loop last reached the queue.

The worker is a subprocess on the test's database (SQLite file or PostgreSQL) and talks to
the Notion fake of this process; its metrics are scraped over loopback.
"""

from __future__ import annotations

import re
import socket
import time

import httpx
import pytest

from service import db, jobs
from service.publishing import notion_publish
from service.settings import Settings, SettingsError
from tests.fakes.notion_fake import NotionFake
from tests.live_server import wait_for
from tests.service.publishing.conftest import approve, jobs_of, make_release
from tests.service.publishing.test_job_metrics import sample
from tests.service.publishing.test_worker_kill import Workers, _json_lines, workers

__all__ = ["workers"]  # the fixture, shared with test_worker_kill


def test_a_worker_serves_its_own_metrics(app, session, notion: NotionFake, workers: Workers):
    published = make_release(session, version="3.12.0")
    approve(session, published)
    # A publish job for a release without notes (they were deleted, say) fails for good.
    noteless = make_release(session, version="3.13.0", with_note=False)
    with app.app_context(), db.session_scope() as s:
        payload = {"release_id": noteless.id, "actor": "test", "reason": "test"}
        jobs.enqueue(s, notion_publish.KIND, key=f"release:{noteless.id}", payload=payload)
    workers.env["RELGOV_WORKER_METRICS_PORT"] = "0"  # any free port; the worker logs it
    started = time.time()
    workers.start()

    def metrics_url() -> str | None:
        lines = [r for r in _json_lines(workers.log(1)) if r.get("metrics_url")]
        return lines[0]["metrics_url"] if lines else None

    url = wait_for(metrics_url, 60, "the worker to serve its metrics")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", url)

    def finished(release) -> bool:  # type: ignore[no-untyped-def]
        return [j.state for j in jobs_of(session, release)] in (["succeeded"], ["failed"])

    wait_for(lambda: finished(published) and finished(noteless), 60, "both publish jobs")
    assert [j.state for j in jobs_of(session, published)] == ["succeeded"]
    assert [j.state for j in jobs_of(session, noteless)] == ["failed"]

    def scrape() -> str:
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return response.text

    def after_the_jobs() -> str | None:
        # The worker counts a job just after recording its outcome: wait for the counts
        # (and for the periodic rollup the worker queued itself when it started).
        text = scrape()
        counted = [
            line
            for line in text.splitlines()
            if line.startswith("relgov_job_runs_total{")
            and ('kind="periodic:adoption-rollup"' in line or 'state="failed"' in line)
        ]
        return text if len(counted) == 2 and last_loop(text) else None

    body = wait_for(after_the_jobs, 30, "the worker's metrics to show the jobs")
    assert last_loop(body) >= int(started)
    runs = "relgov_job_runs_total"
    assert sample(body, runs, kind="notion_publish", state="succeeded") == 1
    assert sample(body, runs, kind="notion_publish", state="failed") == 1
    assert sample(body, runs, kind="periodic:adoption-rollup", state="succeeded") == 1
    failures = "relgov_job_failures_total"
    assert sample(body, failures, kind="notion_publish", outcome="failed") == 1
    assert sample(body, failures, kind="notion_publish", outcome="retry") is None
    assert sample(body, "relgov_job_wait_seconds_count", kind="notion_publish") == 2
    claims = sample(body, "relgov_job_claim_seconds_count")
    assert claims is not None and claims >= 3  # a claim per job, and one per empty poll
    assert sample(body, "relgov_worker_running_jobs") == 0
    assert sample(body, "relgov_worker_loop_failures_total") == 0
    assert 'relgov_job_duration_seconds_count{kind="notion_publish"} 2.0' in body
    assert sample(body, "process_resident_memory_bytes")
    # Only the worker's own figures: the queue gauges and requests are the web's /metrics.
    assert "relgov_jobs_by_kind" not in body and "relgov_http_requests_total" not in body
    before = last_loop(scrape())
    wait_for(lambda: last_loop(scrape()) > before, 30, "the loop's timestamp to move on")


def last_loop(body: str) -> float:
    """The worker's last-loop timestamp (one worker loop: one series, labelled by its id)."""
    found = re.findall(
        r'^relgov_worker_last_loop_timestamp_seconds\{worker="([^"]+)"\} (\S+)$', body, re.M
    )
    assert len(found) <= 1, found
    return float(found[0][1]) if found else 0.0


def test_the_worker_metrics_settings():
    assert Settings.from_env({}).worker_metrics_port is None
    settings = Settings.from_env({"RELGOV_WORKER_METRICS_PORT": "9464"})
    assert settings.worker_metrics_port == 9464
    assert settings.worker_metrics_address == "127.0.0.1"
    assert Settings.from_env({"RELGOV_WORKER_METRICS_ADDRESS": "0.0.0.0"}).worker_metrics_address
    for wrong in ("70000", "-1", "metrics"):
        with pytest.raises(SettingsError, match="RELGOV_WORKER_METRICS_PORT"):
            Settings.from_env({"RELGOV_WORKER_METRICS_PORT": wrong})


def test_a_taken_port_is_one_line_and_exit_status_2(app, workers: Workers):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        workers.env["RELGOV_WORKER_METRICS_PORT"] = str(taken.getsockname()[1])
        proc = workers.start()
        assert proc.wait(timeout=60) == 2
    assert "error: cannot serve the worker's metrics on 127.0.0.1:" in workers.log(1)
