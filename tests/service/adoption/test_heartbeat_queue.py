"""Queued heartbeats (service/adoption/queue.py, ``RELGOV_HEARTBEAT_FLUSH_MS``): answered
202 once valid, written by the queue's writer with the same ingest as a synchronous
request, and never lost by a failed write or a normal stop."""

from __future__ import annotations

import os
import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from beta.models import Device, Store
from service.adoption import fastpath, services
from service.adoption import queue as queue_module
from service.adoption.queue import HeartbeatQueue, queue_of
from service.settings import Settings
from tests.service.adoption.conftest import URL, bearer, beat, stored
from version_monitor.models import DeviceState, VersionChange


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A long interval: the writer thread waits, the tests write with flush().
    return replace(settings, heartbeat_flush_ms=60_000)


@pytest.fixture
def primed(app, client, heartbeat_token, warm) -> Any:
    """States for S001-pos-0 and S002-pos-0, queued and written. (The warm-up, answered by
    the view, filled this process's store cache with the whole fleet.)"""
    response = client.post(URL, json=[beat(0), beat(1)], headers=bearer(heartbeat_token))
    assert response.status_code == 202, response.json
    assert the_queue(app).flush() == 2
    return response


def the_queue(app: Flask) -> HeartbeatQueue:
    queue = queue_of(app)
    assert queue is not None
    return queue


def test_a_valid_heartbeat_is_answered_202_and_written_by_the_flush(
    client, app, session, heartbeat_token, fast, primed
):
    before = stored(session)
    response = client.post(URL, json=beat(0, version="3.3.0"), headers=bearer(heartbeat_token))
    assert response.status_code == 202, response.json
    assert response.json == {"accepted": 1, "rejected": [], "queued": 1}
    assert fast[-1] == response.json
    assert response.headers["X-Request-ID"]
    for name in ("Content-Security-Policy", "X-Content-Type-Options", "Content-Type"):
        assert response.headers[name] == primed.headers[name]
    assert stored(session) == before  # answered, not written yet
    queue = the_queue(app)
    assert queue.waiting == 1
    assert queue.flush() == 1
    assert queue.waiting == 0
    assert stored(session) == (before[0], before[1] + 1)  # S001-pos-0 moved to 3.3.0
    state = session.scalars(select(DeviceState).where(DeviceState.version == "3.3.0")).one()
    assert state.channel == "beta"  # S001 is the beta store


def test_queued_and_synchronous_heartbeats_end_in_the_same_rows(
    client, app, session, heartbeat_token, fast, primed, monkeypatch
):
    """The same traffic for two sets of devices, one written request by request, the other
    queued and written in one go: registrations, states and the change log are the same."""

    base = datetime.now(UTC) - timedelta(minutes=1)

    def traffic(prefix: str) -> list[Any]:
        def b(n: int, device: int, version: str) -> dict[str, object]:
            sent = (base + timedelta(milliseconds=n)).isoformat()
            return beat(n, device_id=f"{prefix}-{device}", version=version, sent_at=sent)

        return [
            b(10, 1, "3.2.0"),
            [b(11, 2, "3.2.0"), b(12, 3, "3.2.1")],
            b(20, 1, "3.3.0"),  # a change
            b(20, 1, "3.3.0"),  # a replay
            [b(30, 2, "3.3.0"), b(25, 2, "3.2.5"), b(31, 3, "3.2.1")],  # out of order
            b(15, 1, "3.1.0"),  # older than what device 1 reported: stale
            [b(40, 1, "3.4.0"), b(41, 1, "3.4.1"), b(42, 4, "3.4.1")],  # two changes in one
        ]

    queued_app = queue_of
    monkeypatch.setattr(fastpath, "queue_of", lambda _app: None)
    for body in traffic("sync"):
        response = client.post(URL, json=body, headers=bearer(heartbeat_token))
        assert response.status_code == 200, response.json
    monkeypatch.setattr(fastpath, "queue_of", queued_app)
    queue = the_queue(app)
    for body in traffic("each"):  # a write after every request
        response = client.post(URL, json=body, headers=bearer(heartbeat_token))
        assert response.status_code == 202, response.json
        assert queue.flush() == response.json["queued"]
    for body in traffic("once"):  # one write for all of them
        response = client.post(URL, json=body, headers=bearer(heartbeat_token))
        assert response.status_code == 202, response.json
    assert queue.flush() == 12

    def rows(prefix: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        session.expire_all()
        names = dict(
            session.execute(
                select(Device.id, Device.device_id).where(Device.device_id.startswith(prefix))
            ).all()
        )
        states = sorted(
            (
                names[s.device_id].split("-")[1],
                *(s.version, s.version_since, s.first_seen, s.last_seen),
                *(s.last_sent_at, s.channel, s.store_id),
            )
            for s in session.scalars(
                select(DeviceState).where(DeviceState.device_id.in_(names))
            ).all()
        )
        changes = sorted(
            (names[c.device_id].split("-")[1], c.from_version or "", c.to_version, c.at)
            for c in session.scalars(
                select(VersionChange).where(VersionChange.device_id.in_(names))
            ).all()
        )
        return states, changes

    sync_states, sync_changes = rows("sync-")
    assert len(sync_states) == 4 and len(sync_changes) == 9
    assert rows("each-") == (sync_states, sync_changes)
    # Written together, device 1's late heartbeat (3.1.0, sent between 3.2.0 and 3.3.0)
    # takes its place by sent_at instead of arriving stale: the same states, and the
    # change log has the detour.
    once_states, once_changes = rows("once-")
    assert once_states == sync_states
    at = {c[2]: c[3] for c in sync_changes if c[0] == "1"}
    t15 = at["3.3.0"] - timedelta(milliseconds=5)
    assert set(sync_changes) - set(once_changes) == {("1", "3.2.0", "3.3.0", at["3.3.0"])}
    assert set(once_changes) - set(sync_changes) == {
        ("1", "3.2.0", "3.1.0", t15),
        ("1", "3.1.0", "3.3.0", at["3.3.0"]),
    }


def test_what_the_queue_cannot_answer_is_answered_synchronously(
    client, app, session, heartbeat_token, fast, primed
):
    invalid = client.post(URL, json=beat(0, version="latest"), headers=bearer(heartbeat_token))
    assert invalid.status_code == 422
    services.ingest_ids(app).stores.pop("S002", None)  # a store this process has not seen
    uncached = client.post(URL, json=beat(1, device_id="new-1"), headers=bearer(heartbeat_token))
    assert uncached.status_code == 200 and uncached.json["new_device_states"] == 1
    cached = client.post(URL, json=beat(4), headers=bearer(heartbeat_token))
    assert cached.status_code == 202
    assert the_queue(app).waiting == 1


def test_a_fleet_change_before_the_write_is_followed(
    client, app, session, heartbeat_token, fast, primed
):
    queued = client.post(URL, json=beat(1), headers=bearer(heartbeat_token))  # S002: stable
    assert queued.status_code == 202
    store = session.scalars(select(Store).where(Store.external_id == "S002")).one()
    store.in_beta = True
    session.add(store)
    session.commit()  # moves the fleet counter
    assert the_queue(app).flush() == 1
    session.expire_all()
    state = session.scalars(select(DeviceState).where(DeviceState.store_id == store.id)).one()
    assert state.channel == "beta"
    assert services.ingest_ids(app).stores == {}  # the requests' cache starts again


def test_the_rate_limit_counts_queued_heartbeats(
    client, app, session, heartbeat_token, fast, primed
):
    app.config["RELGOV_SETTINGS"] = replace(app.config["RELGOV_SETTINGS"], heartbeat_rate_limit=4)
    statuses = [
        client.post(URL, json=beat(n), headers=bearer(heartbeat_token)).status_code
        for n in range(10, 15)
    ]
    # The database counts 3 (the warm-up and the priming request), which this process
    # learnt when it wrote the priming request: one more fits and is queued; the next one
    # finds no room in what this process knows and is counted in the database, which does
    # not have the queued one yet (a process's queue counts once written): accepted; then
    # the database's count is full too.
    assert statuses == [202, 200, 429, 429, 429]
    assert the_queue(app).flush() == 1
    refused = client.post(URL, json=beat(20), headers=bearer(heartbeat_token))
    assert refused.status_code == 429, refused.json
    assert the_queue(app).waiting == 0


def test_a_failed_write_keeps_the_heartbeats_for_the_next(
    client, app, session, heartbeat_token, fast, primed, monkeypatch
):
    for n in (10, 11):
        client.post(URL, json=beat(n, device_id=f"new-{n}"), headers=bearer(heartbeat_token))
    real = queue_module.ingest

    def failing(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(queue_module, "ingest", failing)
    before = stored(session)
    queue = the_queue(app)
    with pytest.raises(OperationalError):
        queue.flush()
    assert queue.waiting == 2 and stored(session) == before
    monkeypatch.setattr(queue_module, "ingest", real)
    assert queue.flush() == 2
    assert stored(session)[0] == before[0] + 2


def test_after_a_failed_write_requests_pause_before_trying_again(
    client, app, session, heartbeat_token, fast, primed, monkeypatch
):
    """While the database is away, the requests that find heartbeats due do not each try a
    write (a connection attempt and a logged failure per request): one tries, then they
    wait for a pause."""
    queue = the_queue(app)
    attempts: list[int] = []
    real = queue_module.ingest

    def failing(*args: Any, **kwargs: Any) -> Any:
        attempts.append(1)
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    def post_due(n: int) -> None:
        response = client.post(
            URL, json=beat(n, device_id=f"new-{n}"), headers=bearer(heartbeat_token)
        )
        assert response.status_code == 202, response.json
        queue._chunks[:] = [
            replace(c, queued_at=c.queued_at - queue.interval) for c in queue._chunks
        ]
        response.close()  # the WSGI close(): the request thread writes what is due

    monkeypatch.setattr(queue_module, "ingest", failing)
    for n in (10, 11, 12):
        post_due(n)
    assert len(attempts) == 1
    assert queue.waiting == 3
    monkeypatch.setattr(queue_module, "ingest", real)
    queue._retry_at = time.monotonic()  # the pause is over
    post_due(13)
    assert queue.waiting == 0


def test_a_full_queue_makes_requests_write_their_own(
    client, app, heartbeat_token, fast, primed, monkeypatch
):
    monkeypatch.setattr(queue_module, "CAPACITY", 1)
    monkeypatch.setattr(queue_module, "ROOM_WAIT", 0.01)
    first = client.post(URL, json=beat(10), headers=bearer(heartbeat_token))
    second = client.post(URL, json=beat(11), headers=bearer(heartbeat_token))
    assert (first.status_code, second.status_code) == (202, 200)


def test_closing_writes_what_is_left(client, app, session, heartbeat_token, fast, primed):
    before = stored(session)
    body = [beat(10, device_id="new-10"), beat(11, device_id="new-11")]
    client.post(URL, json=body, headers=bearer(heartbeat_token))
    the_queue(app).close()
    assert stored(session)[0] == before[0] + 2
    after = client.post(URL, json=beat(20), headers=bearer(heartbeat_token))
    assert after.status_code == 200  # closed: requests write their own


def test_the_writer_thread_writes_within_the_interval(
    client, app, session, heartbeat_token, fast, primed
):
    app.extensions.pop("relgov.heartbeat_queue").close()
    app.config["RELGOV_SETTINGS"] = replace(app.config["RELGOV_SETTINGS"], heartbeat_flush_ms=20)
    before = stored(session)
    response = client.post(URL, json=beat(10, device_id="new-10"), headers=bearer(heartbeat_token))
    assert response.status_code == 202
    deadline = time.monotonic() + 10
    queue = the_queue(app)
    while (stored(session) == before or queue.waiting) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stored(session) == (before[0] + 1, before[1] + 1)
    assert queue.waiting == 0


def test_the_flush_interval_setting():
    base = {"RELGOV_SECRET_KEY": "x" * 40}
    assert Settings.from_env(base | {"RELGOV_ENV": "production"}).heartbeat_flush_ms == 50
    assert Settings.from_env(base | {"RELGOV_ENV": "development"}).heartbeat_flush_ms == 0
    assert Settings.from_env(base | {"RELGOV_ENV": "test"}).heartbeat_flush_ms == 0
    off = base | {"RELGOV_ENV": "production", "RELGOV_HEARTBEAT_FLUSH_MS": "0"}
    assert Settings.from_env(off).heartbeat_flush_ms == 0


def test_without_an_interval_there_is_no_queue(app):
    """Without a flush interval there is no queue: every request writes its own."""
    app.config["RELGOV_SETTINGS"] = replace(app.config["RELGOV_SETTINGS"], heartbeat_flush_ms=0)
    app.extensions.pop("relgov.heartbeat_queue", None)
    assert queue_of(app) is None


def test_the_request_thread_writes_once_its_answer_is_sent(
    client, app, session, heartbeat_token, fast, primed
):
    queue = the_queue(app)
    before = stored(session)
    response = client.post(URL, json=beat(10, device_id="new-10"), headers=bearer(heartbeat_token))
    assert response.status_code == 202
    # Make it due: queued an interval ago. (The queue's thread, which writes what has
    # waited twice the interval, sleeps on: it looked when it arrived.)
    chunk = queue._chunks[0]
    queue._chunks[0] = replace(chunk, queued_at=chunk.queued_at - queue.interval)
    response.close()  # the server is done with the body: the WSGI close() writes
    assert stored(session) == (before[0] + 1, before[1] + 1)
    assert queue.waiting == 0


def test_a_large_batch_is_written_at_once_with_the_full_answer(
    client, app, session, heartbeat_token, fast, primed
):
    body = [beat(n, device_id=f"big-{n}") for n in range(fastpath.QUEUED_ITEMS)]
    response = client.post(URL, json=body, headers=bearer(heartbeat_token))
    assert response.status_code == 200, response.json
    assert response.json["registered_devices"] == fastpath.QUEUED_ITEMS
    smaller = client.post(URL, json=body[1:], headers=bearer(heartbeat_token))
    assert smaller.status_code == 202  # replays, queued: they will change nothing
    assert the_queue(app).flush() == fastpath.QUEUED_ITEMS - 1


def test_a_forked_child_starts_with_an_empty_queue(
    client, app, session, heartbeat_token, fast, primed
):
    queue = the_queue(app)
    client.post(URL, json=beat(10, device_id="new-10"), headers=bearer(heartbeat_token))
    assert queue.waiting == 1
    pid = os.fork()
    if pid == 0:  # the child: neither has nor writes the parent's heartbeats
        empty = (queue.waiting, queue._chunks, queue._thread) == (0, [], None)
        os._exit(0 if empty else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert queue.waiting == 1 and queue.flush() == 1  # the parent's are still its own


def test_the_queue_is_in_the_metrics(client, app, heartbeat_token, fast, primed):
    def waiting() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        found = re.search(r"^relgov_heartbeats_queue_waiting ([0-9.e+-]+)$", text, re.M)
        assert found, "relgov_heartbeats_queue_waiting is missing"
        return float(found.group(1))

    before = waiting()
    client.post(URL, json=beat(10, device_id="new-10"), headers=bearer(heartbeat_token))
    assert waiting() == before + 1
    the_queue(app).flush()
    assert waiting() == before
