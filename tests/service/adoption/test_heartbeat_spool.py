"""The heartbeat spool (service/adoption/spool.py): a queued heartbeat is on disk from
before its 202 until its write is committed; what a dead process left there is written by
the next process, once, and nothing a live process holds is touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from beta.models import Device, Store
from service.adoption import queue as queue_module
from service.adoption import spool as spool_module
from service.adoption.queue import HeartbeatQueue, queue_of, replay_orphans, spool_folder
from service.adoption.spool import Spool, decode, encode
from service.settings import Settings
from tests.live_server import ROOT, wait_for
from tests.service.adoption.conftest import URL, bearer, beat, stored
from version_monitor.ingest import ValidHeartbeat


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A long interval: nothing is written unless a test flushes.
    return replace(settings, heartbeat_flush_ms=60_000)


def the_queue(app: Flask) -> HeartbeatQueue:
    queue = queue_of(app)
    assert queue is not None
    return queue


def spool_files(app: Flask) -> list[Path]:
    folder = spool_folder(app)
    return sorted(folder.glob("*.spool")) if folder.exists() else []


def lines_of(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().split(b"\n") if line]


def store_ids(session: Any) -> list[int]:
    return sorted(session.scalars(select(Store.id)).all())


def valid(n: int, store_id: int, *, device: str | None = None) -> ValidHeartbeat:
    return ValidHeartbeat(
        index=0,
        device_id=device or f"spooled-{n}",
        store_id=store_id,
        channel="stable",
        app="pos",
        version="3.2.0",
        version_key="0003.0002.0000",
        device_kind="pos",
        sent_at=datetime(2026, 1, 1) + timedelta(seconds=n),
    )


def test_a_queued_heartbeat_is_in_the_spool_from_its_answer_until_written(
    client, app, session, heartbeat_token, warm
):
    body = [beat(0, device_id="new-0"), beat(1, device_id="new-1")]
    response = client.post(URL, json=body, headers=bearer(heartbeat_token))
    assert response.status_code == 202, response.json
    [path] = spool_files(app)
    [line] = lines_of(path)
    record = decode(line)
    assert [hb.device_id for hb in record.beats] == ["new-0", "new-1"]
    assert record.beats[0].sent_at == datetime.fromisoformat(str(body[0]["sent_at"])).replace(
        tzinfo=None
    )
    queue = the_queue(app)
    assert queue.flush() == 2
    assert path.exists() and path.read_bytes() == b""  # written: emptied
    client.post(URL, json=beat(2, device_id="new-2"), headers=bearer(heartbeat_token))
    assert len(lines_of(path)) == 1
    queue.close()  # a normal stop writes it and removes the file
    assert spool_files(app) == []
    assert stored(session)[0] == 4  # the warm-up's, new-0, new-1, new-2


KILLED = """
import os, signal, sys
from service.app import create_app

app = create_app()
client = app.test_client()
headers = {"Authorization": "Bearer " + sys.argv[1]}
for body in sys.argv[2:]:
    response = client.post("/api/v1/heartbeats", data=body, headers=headers,
                           content_type="application/json")
    print(response.status_code, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_what_a_killed_process_answered_is_written_by_the_next_one_at_its_first_request(
    app, session, heartbeat_token, fleet, database_url, settings
):
    """A real process answers heartbeats (202, queued) and is SIGKILLed before writing
    them; a new process with the same spool folder writes them once it takes a request."""
    bodies = [beat(n, device_id=f"killed-{n}") for n in range(4)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELGOV_")} | {
        "RELGOV_ENV": "test",
        "RELGOV_DATABASE_URL": database_url,
        "RELGOV_INSTANCE_PATH": str(settings.instance_path),
        "RELGOV_SECRET_KEY": settings.secret_key,
        "RELGOV_HEARTBEAT_FLUSH_MS": "60000",
    }
    killed = subprocess.run(
        [sys.executable, "-c", KILLED, heartbeat_token, *map(json.dumps, bodies)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    # The first request met a token this process had not seen: the view wrote it.
    assert killed.stdout.split() == ["200", "202", "202", "202"], killed.stderr
    assert stored(session)[0] == 1
    assert len(spool_files(app)) == 1

    app.test_client().get("/healthz")  # this process's first request: its queue replays
    wait_for(lambda: stored(session)[0] == 4, 30, "the killed process's heartbeats")
    wait_for(lambda: spool_files(app) == [], 10, "the replayed file to be removed")
    names = set(session.scalars(select(Device.device_id)).all())
    assert {f"killed-{n}" for n in range(4)} <= names


def test_replaying_writes_the_file_of_a_dead_process_once_and_leaves_live_ones_alone(
    app, session, fleet
):
    folder = spool_folder(app)
    engine = app.extensions["relgov.engine"]
    first, second = store_ids(session)[:2]
    live = Spool(folder)
    live.append(encode([valid(1, first)], token_id=1, window=1))
    dead = Spool(folder)
    dead.append(encode([valid(2, first), valid(3, second)], token_id=1, window=1))
    dead.forget()  # as if its process died: the descriptors are closed, the file stays
    assert len(list(folder.glob("*.spool"))) == 2

    assert replay_orphans(engine, folder) == 2
    assert stored(session)[0] == 2
    assert replay_orphans(engine, folder) == 0  # removed once written; the live one kept
    assert len(list(folder.glob("*.spool"))) == 1

    live.forget()
    assert replay_orphans(engine, folder) == 1
    assert stored(session)[0] == 3
    assert list(folder.iterdir()) == []


def test_a_line_cut_short_is_skipped_and_the_others_are_written(app, session, fleet, caplog):
    folder = spool_folder(app)
    folder.mkdir(parents=True)
    store = store_ids(session)[0]
    whole = encode([valid(1, store)], token_id=1, window=1)
    cut = encode([valid(2, store)], token_id=1, window=1)[:-20]
    (folder / "other-1-0.spool").write_bytes(whole + cut)
    assert replay_orphans(app.extensions["relgov.engine"], folder) == 1
    assert "unreadable line 2" in caplog.text
    assert not folder.joinpath("other-1-0.spool").exists()


def test_a_file_left_half_made_is_removed(app, fleet):
    folder = spool_folder(app)
    folder.mkdir(parents=True)
    (folder / "other-1-0.spool.tmp").write_bytes(b"")
    assert replay_orphans(app.extensions["relgov.engine"], folder) == 0
    assert list(folder.iterdir()) == []


def test_a_heartbeat_that_cannot_be_spooled_is_written_by_its_request(
    client, app, session, heartbeat_token, warm, tmp_path
):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    settings = replace(app.config["RELGOV_SETTINGS"], heartbeat_spool_dir=blocked / "spool")
    app.config["RELGOV_SETTINGS"] = settings
    app.extensions.pop("relgov.heartbeat_queue", None)
    before = stored(session)
    failures = queue_module.SPOOL_FAILURES._value.get()
    response = client.post(URL, json=beat(0, device_id="new-0"), headers=bearer(heartbeat_token))
    assert response.status_code == 200, response.json  # written before the answer
    assert stored(session)[0] == before[0] + 1
    assert the_queue(app).waiting == 0
    assert queue_module.SPOOL_FAILURES._value.get() == failures + 1


def test_segments_roll_over_and_each_goes_once_written(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 10)
    kept = Spool(tmp_path)
    line = encode([valid(1, 1)], token_id=1, window=1)
    first = kept.append(line)
    second = kept.append(line)  # the first segment is past 10 bytes with a line waiting
    assert second != first and len(list(tmp_path.glob("*.spool"))) == 2
    kept.done(first)
    assert len(list(tmp_path.glob("*.spool"))) == 1  # the old segment is removed
    kept.done(second)
    [current] = tmp_path.glob("*.spool")
    assert current.read_bytes() == b""  # the current one is emptied
    assert kept.waiting == 0
    kept.close()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_append_leaves_nothing_of_the_line(tmp_path, monkeypatch):
    kept = Spool(tmp_path)
    kept.append(b"first\n")

    def short(fd: int, data: bytes) -> int:
        os.lseek(fd, 0, os.SEEK_END)
        return os.writev(fd, [data[:3]])

    monkeypatch.setattr(spool_module.os, "write", short)
    with pytest.raises(OSError):
        kept.append(b"second\n")
    monkeypatch.undo()
    [path] = tmp_path.glob("*.spool")
    assert path.read_bytes() == b"first\n"
    assert kept.waiting == 1
    kept.forget()


def test_a_forked_child_does_not_hold_the_parents_spool(client, app, heartbeat_token, warm):
    """Else the parent's file would stay locked, and never be replayed, after the parent
    died as long as the child lives."""
    client.post(URL, json=beat(0, device_id="new-0"), headers=bearer(heartbeat_token))
    [path] = spool_files(app)
    descriptors = [fd for fd, _path in the_queue(app)._spool._files.values()]
    pid = os.fork()
    if pid == 0:  # the child: its copies of the parent's descriptors are closed
        still_open = 0
        for fd in descriptors:
            try:
                os.fstat(fd)
                still_open += 1
            except OSError:
                pass
        waiting = the_queue(app)._spool.waiting
        os._exit(0 if (still_open, waiting) == (0, 0) and path.exists() else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    folder = spool_folder(app)
    # Still the parent's: held, so not replayed.
    assert replay_orphans(app.extensions["relgov.engine"], folder) == 0
    assert path.exists()


def test_the_spool_folder_setting(tmp_path):
    base: dict[str, Any] = {"RELGOV_SECRET_KEY": "x" * 40, "RELGOV_INSTANCE_PATH": str(tmp_path)}
    assert Settings.from_env(base).heartbeat_spool == tmp_path / "heartbeat-spool"
    chosen = base | {"RELGOV_HEARTBEAT_SPOOL_DIR": str(tmp_path / "elsewhere")}
    assert Settings.from_env(chosen).heartbeat_spool == tmp_path / "elsewhere"
    assert Settings(instance_path=tmp_path).heartbeat_spool == tmp_path / "heartbeat-spool"


def test_the_queue_thread_replays_files_left_while_it_runs(app, session, fleet, monkeypatch):
    monkeypatch.setattr(queue_module, "REPLAY_EVERY", 0.05)
    queue = the_queue(app)
    queue.start()
    dead = Spool(spool_folder(app))
    dead.append(encode([valid(1, store_ids(session)[0], device="late-1")], token_id=1, window=1))
    dead.forget()
    deadline = time.monotonic() + 20
    while stored(session)[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored(session)[0] == 1


def test_each_database_has_its_own_spool_folder(app, session, fleet, database_url):
    folder = spool_folder(app)
    assert folder.parent == app.config["RELGOV_SETTINGS"].heartbeat_spool
    other = folder.with_name("another-database")
    dead = Spool(other)
    dead.append(encode([valid(1, store_ids(session)[0])], token_id=1, window=1))
    dead.forget()
    # What was answered for another database (its store ids mean other stores) stays.
    assert replay_orphans(app.extensions["relgov.engine"], folder) == 0
    assert len(list(other.glob("*.spool"))) == 1
    assert stored(session)[0] == 0
