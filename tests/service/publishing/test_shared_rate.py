"""One Notion rate limit for every worker and process (issue 19 B): several ``relgov
worker`` processes publishing at once stay within ``RELGOV_NOTION_RATE`` requests per second
in total, as counted at the Notion fake; and the bucket itself on a fake clock."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlmodel import select

from service.jobs.models import Job
from service.jobs.throttle import SharedTokenBucket
from service.models import utcnow
from service.publishing import notion_publish
from tests.fakes.notion_fixtures import FakeClock
from tests.live_server import wait_for
from tests.service.publishing import test_worker_kill
from tests.service.publishing.conftest import approve, make_release
from tests.service.publishing.test_worker_kill import LONG_NOTE

workers = test_worker_kill.workers  # the fixture: ``relgov worker`` subprocesses

RATE = 3.0
WINDOW = 10  # consecutive requests
PUBLISH_JOBS = select(Job).where(Job.kind == notion_publish.KIND)


def test_several_workers_share_one_rate_limit(app, session, notion, workers) -> None:
    workers.env["RELGOV_NOTION_RATE"] = str(RATE)
    releases = [make_release(session, version=f"3.{n}.0", markdown=LONG_NOTE) for n in range(3)]
    for release in releases:
        approve(session, release)
    for job in session.exec(PUBLISH_JOBS).all():  # due now, not after the debounce
        job.next_run_at = utcnow() - timedelta(seconds=1)
        session.add(job)
    session.commit()
    for _ in range(3):
        workers.start()

    def all_done() -> bool:
        session.expire_all()
        states = [j.state for j in session.exec(PUBLISH_JOBS).all()]
        return len(states) == 3 and all(s in ("succeeded", "failed") for s in states)

    wait_for(all_done, 120, "the three publishes")
    session.expire_all()
    assert {j.state for j in session.exec(PUBLISH_JOBS).all()} == {"succeeded"}
    ran = [n for n in (1, 2, 3) if "(notion_publish) started" in workers.log(n)]
    assert len(ran) >= 2, "the workers shared the jobs"
    assert len(notion.live_pages()) == 3

    times = sorted(r.at for r in notion.requests)
    assert len(times) >= 2 * WINDOW
    # Any 10 consecutive requests span at least 9 gaps of 1/RATE s (less a second for a
    # request delayed on its way: an earlier arrival can only make the span longer).
    spans = [times[i + WINDOW - 1] - times[i] for i in range(len(times) - WINDOW + 1)]
    assert min(spans) >= (WINDOW - 1) / RATE - 1.0, spans
    assert (len(times) - 1) / (times[-1] - times[0]) <= RATE + 0.1


def test_the_shared_bucket_spaces_requests_and_pauses_everyone(app) -> None:
    clock = FakeClock()
    engine = app.extensions["relgov.engine"]
    first = SharedTokenBucket(engine, "test", rate=2.0, clock=clock, sleep=clock.sleep)
    second = SharedTokenBucket(engine, "test", rate=2.0, clock=clock, sleep=clock.sleep)
    started = clock.now
    for bucket in (first, second, first, second, first):
        bucket.acquire()
    assert clock.now - started >= 2.0 - 1e-6  # 5 requests at 2/s: the 5th after 2 s
    second.pause(30)
    paused_at = clock.now
    first.acquire()
    assert clock.now - paused_at >= 30 - 1e-6


def test_a_bucket_row_is_made_by_whoever_comes_first(app) -> None:
    engine = app.extensions["relgov.engine"]
    bucket = SharedTokenBucket(engine, "fresh", rate=1.0, sleep=lambda _s: None)
    began = time.monotonic()
    bucket.acquire()
    assert bucket.waited < 0.01 and time.monotonic() - began < 5
