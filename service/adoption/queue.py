"""Heartbeats queued in the process and written in batches (``RELGOV_HEARTBEAT_FLUSH_MS``).

A store device only needs to hear that its heartbeat was valid; what it changed in the
database (a registration, a version change) is for the reports. With a flush interval set
(the default in production: 50 ms), the heartbeat fast path (:mod:`service.adoption.
fastpath`) validates a request exactly as before, against the per-process caches, and then,
instead of writing it in its own transaction, hands the valid heartbeats to this queue and
answers ``202 Accepted`` (``{"accepted": n, "rejected": [], "queued": n}``). Once a
request's answer is sent, its own thread writes what has waited an interval (see "the
writers" below); a thread in each web process writes what waits twice the interval (when
requests stop) and everything at exit. Each write takes up to 1,000 heartbeats a
transaction, with the same :func:`version_monitor.ingest.ingest` as a synchronous request:
replays, stale and out-of-order heartbeats, registrations and the version-change log come
out the same. Everything a request is refused or answered for synchronously stays so: a
rejected item, an uncached token or store, a rate limit reached, a full queue.

Before a request is answered, its heartbeats are also appended to the process's file in
the heartbeat spool (:mod:`service.adoption.spool`), and forgotten there once written: when
the process is killed outright (``SIGKILL``, out of memory, gunicorn's worker timeout), what
it had answered and not written is replayed from that file by another web process of the
machine, or by the next one to start (:meth:`HeartbeatQueue.start`, at a process's first
request). A request whose heartbeats cannot be kept there (a full disk) writes them itself
and is answered ``200``. A normal stop (``SIGTERM``, a gunicorn restart, the worker's
``max_requests``) writes what is queued.

What it costs, said plainly (the README repeats it):

* The reports see a heartbeat up to one interval (plus the write) after it was answered.
* The rate limit counts queued heartbeats when they are written: between two writes,
  another process's queued heartbeats are not seen yet, so a token may pass its limit by
  what the other processes queue in one interval.

Store caches: a request is validated against the store cache of the last fleet counter this
process read (:class:`service.adoption.services.IngestIds`). Each write reads the counter
in its transaction; when it moved since a chunk was validated, the chunk's stores are
looked up again by id (a store's beta flag decides the heartbeat's channel; a heartbeat of
a store deleted meanwhile is dropped and counted), and the request cache is emptied so
the next requests refill it synchronously.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import logging
import os
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import Engine, event, select
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlmodel import Session

from service.adoption import ratelimit, services, spool
from service.beta.answers import read_version
from version_monitor.ingest import ValidHeartbeat, ingest
from version_monitor.models import store_table

__all__ = [
    "CAPACITY",
    "TRANSACTION_ITEMS",
    "HeartbeatQueue",
    "queue_of",
    "replay_orphans",
    "spool_folder",
    "start",
]

_log = logging.getLogger(__name__)

CAPACITY = 20_000  # heartbeats waiting per process; past it requests wait for room
TRANSACTION_ITEMS = 1_000  # heartbeats written per transaction (at most one more request)
ROOM_WAIT = 5.0  # seconds a request waits for room before it writes its own heartbeats
MAX_BACKOFF = 5.0  # seconds between attempts while the database fails
REPLAY_EVERY = 5.0  # seconds between two looks for the spool files of dead processes

WRITTEN = Counter(
    "relgov_heartbeats_queued_written_total", "Queued heartbeats written to the database"
)
DROPPED = Counter(
    "relgov_heartbeats_queued_dropped_total",
    "Queued heartbeats not written: their store was deleted, or the database refused them",
)
FAILURES = Counter(
    "relgov_heartbeat_queue_write_failures_total",
    "Failed writes of queued heartbeats (retried; see the log)",
)
WAITING = Gauge(
    "relgov_heartbeats_queue_waiting",
    "Heartbeats answered and not written yet (all live processes)",
    multiprocess_mode="livesum",
)
REPLAYED = Counter(
    "relgov_heartbeats_replayed_total",
    "Heartbeats a dead process had answered and not written, written from its spool file",
)
SPOOL_FAILURES = Counter(
    "relgov_heartbeat_spool_failures_total",
    "Requests whose heartbeats could not be kept in the spool (written by the request)",
)
LAG = Histogram(
    "relgov_heartbeat_queue_lag_seconds",
    "From a queued heartbeat's answer to the commit of its write",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


@dataclass(frozen=True)
class _Chunk:
    """One request's valid heartbeats, as validated."""

    beats: Sequence[ValidHeartbeat]
    token_id: int
    window: int  # the rate limit's minute (ratelimit.window_of)
    fleet_version: int  # the fleet counter the store cache held when they were validated
    queued_at: float  # time.monotonic()
    segment: int  # where the spool keeps them


class HeartbeatQueue:
    """This process's queue, its spool file and the thread that writes it (started at the
    process's first request, see :func:`start`, or with the first offer)."""

    def __init__(self, app: Flask, engine: Engine, interval: float, spool_dir: Path) -> None:
        self.app = app
        self.engine = engine
        self.interval = interval
        self.spool_dir = spool_dir
        self._devices: dict[str, int] = {}  # the writer's own cache of device ids
        self._version: int | None = None  # the fleet counter _devices belongs to
        self._reset()
        _QUEUES.add(self)
        event.listen(engine, "engine_disposed", self._on_dispose)

    def _reset(self) -> None:
        """Empty, unlocked, no thread: as made, and in a forked child (whose parent keeps
        writing its own queue, and keeps its spool files)."""
        previous: spool.Spool | None = getattr(self, "_spool", None)
        if previous is not None:
            previous.forget()
        self._spool = spool.Spool(self.spool_dir)
        self._spool_failing = False
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # the first heartbeat after none
        self._room = threading.Condition(self._lock)
        self._writing = threading.Lock()  # one write at a time (the thread, flush(), close())
        self._chunks: list[_Chunk] = []
        self._waiting = 0  # heartbeats queued or being written
        # (token, window) -> heartbeats counted in the database (all processes) at the last
        # write, and heartbeats this process queued since.
        self._counted: dict[tuple[int, int], int] = {}
        self._queued: dict[tuple[int, int], int] = defaultdict(int)
        self._thread: threading.Thread | None = None
        self._failures = 0  # failed writes in a row
        self._retry_at = 0.0  # time.monotonic() before which no one writes (after a failure)
        self._closed = False
        self._pid = os.getpid()

    # --- the request side -------------------------------------------------------------

    def within_limit(self, token_id: int, window: int, items: int, limit: int) -> bool:
        """Whether ``items`` more heartbeats stay within ``limit`` for the token this minute,
        as far as this process knows (the database's count at its last write, plus what it
        queued since). False sends the request to the view, which counts in the database."""
        with self._lock:
            key = (token_id, window)
            known = self._counted.get(key, 0) + self._queued.get(key, 0)
        return known + items <= limit

    def offer(
        self, beats: Sequence[ValidHeartbeat], *, token_id: int, window: int, fleet_version: int
    ) -> bool:
        """Queue a request's valid heartbeats; False (nothing queued) when the queue stays
        full for :data:`ROOM_WAIT` seconds or is closed: the request writes them itself."""
        count = len(beats)
        with self._lock:
            deadline = time.monotonic() + ROOM_WAIT
            while not self._closed and self._waiting + count > CAPACITY:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._room.wait(left)
            if self._closed:
                return False
            segment = self._keep(beats, token_id, window)
            if segment is None:
                return False
            if not self._chunks:
                self._arrived.notify()  # the thread idles until the first one comes
            chunk = _Chunk(beats, token_id, window, fleet_version, time.monotonic(), segment)
            self._chunks.append(chunk)
            self._waiting += count
            WAITING.inc(count)
            self._queued[(token_id, window)] += count
            if self._thread is None:
                self._start()
        return True

    def _keep(self, beats: Sequence[ValidHeartbeat], token_id: int, window: int) -> int | None:
        """Append the heartbeats to the spool (under the lock); their segment, or None when
        they could not be kept (logged once until the spool works again)."""
        try:
            segment = self._spool.append(spool.encode(beats, token_id=token_id, window=window))
        except OSError:
            SPOOL_FAILURES.inc()
            if not self._spool_failing:
                _log.warning(
                    "cannot keep heartbeats in the spool %s; requests write their own",
                    self.spool_dir,
                    exc_info=True,
                )
            self._spool_failing = True
            return None
        if self._spool_failing:
            _log.warning("the heartbeat spool %s works again", self.spool_dir)
            self._spool_failing = False
        return segment

    def start(self) -> None:
        """Start the thread (it first replays what dead processes left in the spool)."""
        with self._lock:
            if self._thread is None and not self._closed:
                self._start()

    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name="relgov-heartbeat-queue", daemon=True)
        self._thread = thread
        thread.start()

    # --- the writers --------------------------------------------------------------------
    #
    # Mostly the request threads: once a request's answer has been sent (the WSGI body's
    # close(), see the fast path), its thread writes what is queued when the oldest has
    # waited an interval or a transaction's worth is waiting. No thread of the process runs
    # Python alongside the write then: a write thread running while requests are parsed
    # would wait for the interpreter lock at every database call. The process's own thread
    # only writes what has waited twice the interval (when requests stop coming), and at
    # the end. After a failed write (the database away) no one tries again before a pause
    # (doubling from twice the interval up to MAX_BACKOFF): requests would each wait for a
    # connection attempt and log it.

    def after_response(self) -> None:
        """Write what is due, on the calling (request) thread; never raises."""
        with self._lock:
            due = bool(self._chunks) and (
                self._waiting >= TRANSACTION_ITEMS
                or time.monotonic() - self._chunks[0].queued_at >= self.interval
            )
        if not due or time.monotonic() < self._retry_at:
            return
        if not self._writing.acquire(blocking=False):
            return
        try:
            self._flush()
            self._failures = 0
        except Exception:
            self._failed()
        finally:
            self._writing.release()

    def _failed(self) -> None:
        """A write failed: count it, log it, pause the writers."""
        self._failures += 1
        FAILURES.inc()
        pause = min(MAX_BACKOFF, self.interval * 2**self._failures)
        self._retry_at = time.monotonic() + pause
        _log.warning(
            "writing queued heartbeats failed (attempt %d); retrying in %.1f s",
            self._failures,
            pause,
            exc_info=True,
        )

    def _run(self) -> None:
        replay_at = 0.0
        while True:
            if time.monotonic() >= replay_at:
                self._replay_orphans()
                replay_at = time.monotonic() + REPLAY_EVERY
            with self._lock:
                if self._closed:
                    return
                until_replay = replay_at - time.monotonic()
                if not self._chunks:
                    self._arrived.wait(until_replay)
                    continue
                left = 2 * self.interval - (time.monotonic() - self._chunks[0].queued_at)
                if left > 0:
                    self._arrived.wait(min(left, until_replay))
                    continue  # look again: a request may have written them meanwhile
            pause = self._retry_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
                continue
            try:
                self.flush()
                self._failures = 0
            except Exception:
                self._failed()

    def flush(self) -> int:
        """Write everything queued now, a transaction per :data:`TRANSACTION_ITEMS`; the
        number of heartbeats written. A database error leaves the unwritten ones queued
        (first in line) and is raised."""
        with self._writing:
            return self._flush()

    def _flush(self) -> int:
        written = 0
        while True:
            with self._lock:
                taken: list[_Chunk] = []
                size = 0
                while self._chunks and (
                    not taken or size + len(self._chunks[0].beats) <= TRANSACTION_ITEMS
                ):
                    chunk = self._chunks.pop(0)
                    taken.append(chunk)
                    size += len(chunk.beats)
            if not taken:
                return written
            try:
                self._write(taken)
            except (OperationalError, DisconnectionError):
                self._put_back(taken)  # the database is away: keep them for later
                raise
            except DBAPIError:
                # Refused as data (it should not happen: they were validated): write the
                # chunks one by one and drop only the ones refused.
                written += self._write_each(taken)
                continue
            written += size
            self._done(taken)

    def _write_each(self, chunks: list[_Chunk]) -> int:
        written = 0
        for position, chunk in enumerate(chunks):
            try:
                self._write([chunk])
            except (OperationalError, DisconnectionError):
                self._put_back(chunks[position:])
                raise
            except DBAPIError:
                _log.error(
                    "dropping %d queued heartbeats the database refused",
                    len(chunk.beats),
                    exc_info=True,
                )
                DROPPED.inc(len(chunk.beats))
                self._done([chunk], written=False)
                continue
            written += len(chunk.beats)
            self._done([chunk])
        return written

    def _put_back(self, chunks: list[_Chunk]) -> None:
        with self._lock:
            self._chunks[:0] = chunks

    def _done(self, chunks: list[_Chunk], *, written: bool = True) -> None:
        now = time.monotonic()
        with self._lock:
            for chunk in chunks:
                self._spool.done(chunk.segment)
                self._waiting -= len(chunk.beats)
                WAITING.dec(len(chunk.beats))
                if written:
                    LAG.observe(now - chunk.queued_at)
            self._room.notify_all()
        if written:
            WRITTEN.inc(sum(len(c.beats) for c in chunks))

    def _write(self, chunks: list[_Chunk]) -> None:
        counts: dict[tuple[int, int], int] = defaultdict(int)
        with Session(self.engine) as session:
            version = read_version(session)
            if version != self._version:
                self._devices.clear()
                self._version = version
                services.ingest_ids(self.app).forget(version)
            beats: list[ValidHeartbeat] = []
            for chunk in chunks:
                fresh = (
                    chunk.beats
                    if chunk.fleet_version == version
                    else _restored(session, chunk.beats)
                )
                beats.extend(fresh)
                counts[(chunk.token_id, chunk.window)] += len(chunk.beats)
            ingest(session, beats, now=services.now_naive(), devices=self._devices)
            totals = {
                key: ratelimit.count_queued(session, token_id=key[0], window=key[1], items=items)
                for key, items in counts.items()
            }
            session.commit()
        with self._lock:
            for key, items in counts.items():
                self._queued[key] -= items
                if self._queued[key] <= 0:
                    del self._queued[key]
                self._counted[key] = totals[key]
            current = ratelimit.window_of(time.time())
            for key in [k for k in self._counted if k[1] < current - 1]:
                del self._counted[key]

    def _replay_orphans(self) -> None:
        """Write what dead processes left in the spool; never raises."""
        try:
            with self._writing:  # one write at a time in this process
                replay_orphans(self.engine, self.spool_dir)
        except Exception:
            FAILURES.inc()
            _log.warning("replaying the heartbeat spool failed; retrying later", exc_info=True)

    # --- stopping -----------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread and write what is left (a normal process exit does this)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            self._arrived.notify_all()
            self._room.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if os.getpid() != self._pid:
            return
        try:
            self.flush()
        except Exception:
            _log.error(
                "could not write %d queued heartbeats at exit; they stay in the spool %s "
                "for the next process",
                self._waiting,
                self.spool_dir,
                exc_info=True,
            )
        with self._lock:
            self._spool.close()

    def _on_dispose(self, engine: Engine) -> None:
        """The engine's pool was closed (tests, the CLI): write what is left on a connection
        of its new pool, and close that one too."""
        if not self._closed:
            self.close()
            engine.pool.dispose()

    @property
    def waiting(self) -> int:
        """Heartbeats queued or being written."""
        return self._waiting


def _restored(session: Session, beats: Sequence[ValidHeartbeat]) -> list[ValidHeartbeat]:
    """``beats`` with their stores read again (the fleet changed since they were
    validated): the channel follows the store's beta flag now; a deleted store's
    heartbeats are dropped."""
    ids = sorted({hb.store_id for hb in beats})
    rows = session.execute(
        select(store_table.c.id, store_table.c.in_beta).where(store_table.c.id.in_(ids))
    ).all()
    channel = {store_id: "beta" if in_beta else "stable" for store_id, in_beta in rows}
    kept = [
        hb
        if hb.channel == channel[hb.store_id]
        else dataclasses.replace(hb, channel=channel[hb.store_id])
        for hb in beats
        if hb.store_id in channel
    ]
    if len(kept) < len(beats):
        _log.warning(
            "dropping %d queued heartbeats of stores deleted meanwhile", len(beats) - len(kept)
        )
        DROPPED.inc(len(beats) - len(kept))
    return kept


def replay_orphans(engine: Engine, folder: Path) -> int:
    """Write the heartbeats that dead processes answered and left in the spool ``folder``,
    and remove their files; the number written. A file is written a transaction per
    :data:`TRANSACTION_ITEMS` heartbeats (its stores read again) and removed once all are
    committed; a database failure leaves it for a later attempt (what was committed of it
    is then replayed again, which changes nothing). Replayed heartbeats are not counted
    against the rate limit: the minute they were answered in is over."""
    written = 0
    with contextlib.closing(spool.orphans(folder)) as found:
        for orphan in found:
            beats = [hb for record in orphan.records() for hb in record.beats]
            for start in range(0, len(beats), TRANSACTION_ITEMS):
                written += _replay(engine, beats[start : start + TRANSACTION_ITEMS])
            orphan.remove()
            if beats:
                _log.warning(
                    "wrote %d heartbeats a dead process had answered, from %s",
                    len(beats),
                    orphan.path,
                )
    return written


def _replay(engine: Engine, beats: list[ValidHeartbeat]) -> int:
    try:
        with Session(engine) as session:
            fresh = _restored(session, beats)
            ingest(session, fresh, now=services.now_naive(), devices={})
            session.commit()
    except (OperationalError, DisconnectionError):
        raise  # the database is away: the file stays for the next attempt
    except DBAPIError:
        if len(beats) == 1:
            _log.error("dropping a spooled heartbeat the database refused", exc_info=True)
            DROPPED.inc()
            return 0
        middle = len(beats) // 2  # refused as data: find the one refused
        return _replay(engine, beats[:middle]) + _replay(engine, beats[middle:])
    REPLAYED.inc(len(fresh))
    return len(fresh)


_QUEUES: weakref.WeakSet[HeartbeatQueue] = weakref.WeakSet()
_STARTED: weakref.WeakSet[Flask] = weakref.WeakSet()  # apps whose start() ran in this process


def _after_fork_in_child() -> None:
    _STARTED.clear()
    for queue in list(_QUEUES):
        queue._reset()


def _at_exit() -> None:
    for queue in list(_QUEUES):
        queue.close()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)


def start(app: Flask) -> None:
    """At a process's first request (the fast path calls this for every request; after the
    first it only looks in a set): replay what dead processes left in the spool. With the
    queue on, its thread does (and looks again every :data:`REPLAY_EVERY` seconds); without
    it, a thread does it once when there are files. Never raises: the request goes on
    whatever happens here (a broken engine is the request's own 503 to give)."""
    if app in _STARTED:
        return
    _STARTED.add(app)
    try:
        queue = queue_of(app)
        if queue is not None:
            queue.start()
            return
        folder = spool_folder(app)
        if not spool.has_files(folder):
            return
        engine: Engine = app.extensions["relgov.engine"]
        threading.Thread(
            target=_replay_once, args=(engine, folder), name="relgov-heartbeat-replay", daemon=True
        ).start()
    except Exception:
        FAILURES.inc()
        _log.warning("could not start replaying the heartbeat spool", exc_info=True)


def _replay_once(engine: Engine, folder: Path) -> None:
    try:
        replay_orphans(engine, folder)
    except Exception:
        FAILURES.inc()
        _log.warning("replaying the heartbeat spool failed", exc_info=True)


def spool_folder(app: Flask) -> Path:
    """The app's spool: a folder per database in ``RELGOV_HEARTBEAT_SPOOL_DIR`` (its name a
    hash of the database URL without the password), so that what was answered for one
    database is never replayed into another."""
    engine: Engine = app.extensions["relgov.engine"]
    url = engine.url.render_as_string(hide_password=True)
    spool_dir: Path = app.config["RELGOV_SETTINGS"].heartbeat_spool
    return spool_dir / hashlib.sha256(url.encode()).hexdigest()[:16]


def queue_of(app: Flask) -> HeartbeatQueue | None:
    """The app's queue, made on first use; None when heartbeats are written synchronously
    (``RELGOV_HEARTBEAT_FLUSH_MS=0``)."""
    queue: HeartbeatQueue | None = app.extensions.get("relgov.heartbeat_queue")
    if queue is None:
        flush_ms: int = app.config["RELGOV_SETTINGS"].heartbeat_flush_ms
        if flush_ms <= 0:
            return None
        queue = HeartbeatQueue(
            app, app.extensions["relgov.engine"], flush_ms / 1000, spool_folder(app)
        )
        app.extensions["relgov.heartbeat_queue"] = queue
    return queue
