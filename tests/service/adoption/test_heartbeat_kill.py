"""Heartbeats answered 202 survive the web worker that answered them being killed outright.

The service runs under gunicorn with its production configuration (2 workers, heartbeats
queued), on the test's database (a SQLite file, or a PostgreSQL database of its own with
RELGOV_TEST_DATABASE_URL). Threads send heartbeats, each from a new device; a worker, or
the whole server, is SIGKILLed in the middle; every heartbeat answered 200 or 202 must then
be stored, without anyone sending it again. The flush interval is 1 s instead of 50 ms so
that the killed worker certainly holds answered heartbeats it has not written yet (what is
checked does not depend on the interval).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live_server import Gunicorn, HeartbeatLoad, all_stored, production_env, wait_for

STORES = ["S001", "S002", "S003"]  # the ``fleet`` fixture's


@pytest.fixture
def server(database_url: str, tmp_path: Path, fleet: None) -> Iterator[Gunicorn]:
    env = production_env(database_url, tmp_path, RELGOV_HEARTBEAT_FLUSH_MS="1000")
    web = Gunicorn(env, tmp_path)
    try:
        yield web
    finally:
        web.stop()


def test_heartbeats_answered_by_a_killed_worker_are_written(
    server: Gunicorn, heartbeat_token: str, database_url: str
) -> None:
    server.start()
    with HeartbeatLoad(server.port, heartbeat_token, STORES) as load:
        wait_for(lambda: load.count >= 200, 30, "200 answered heartbeats")
        killed = server.kill_worker()
        wait_for(
            lambda: killed not in server.workers() and len(server.workers()) == 2,
            30,
            "a new worker",
        )
        answered_at_kill = load.count
        wait_for(lambda: load.count >= answered_at_kill + 200, 30, "200 more answered heartbeats")
    assert set(load.statuses) <= {200, 202}, (load.statuses, load.refusals)
    assert load.statuses[202] > 0  # queued: answered before they were written
    missing = all_stored(database_url, load.answered, timeout=30)
    assert missing == [], f"{len(missing)} of {load.count} answered heartbeats were lost"


def test_heartbeats_answered_before_the_whole_server_was_killed_are_written_at_restart(
    server: Gunicorn, heartbeat_token: str, database_url: str
) -> None:
    server.start()
    with HeartbeatLoad(server.port, heartbeat_token, STORES) as load:
        wait_for(lambda: load.count >= 300, 30, "300 answered heartbeats")
        server.kill()
    assert load.statuses[202] > 0
    server.start()  # the same instance folder, as on the same machine
    missing = all_stored(database_url, load.answered, timeout=30)
    assert missing == [], f"{len(missing)} of {load.count} answered heartbeats were lost"
