"""A job queue in the database: enqueue in the caller's transaction, claim one job at a time.

- :func:`enqueue` adds a job inside the caller's transaction (so a job exists exactly when
  the change that asked for it was committed). A job with a ``key`` coalesces: while a job
  for that key is *queued*, enqueueing again only moves its ``next_run_at`` (a short
  debounce, never past ``MAX_DEBOUNCE`` after the job was created, never earlier than a
  retry's backoff unless ``run_now``).
- :func:`claim` takes one due job under a lease (``locked_by`` / ``locked_until``). On
  PostgreSQL the candidate is selected ``FOR UPDATE SKIP LOCKED``; on every database the
  claim itself is an ``UPDATE ... WHERE id = ? AND <still claimable>`` whose row count says
  who won, so two workers never run one job. A job whose lease ran out (its worker died) is
  claimable again. A job is not claimed while another job of the same key is running, even
  one whose worker died (that one is taken over first, and the other waits for it to end);
  a unique partial index on the running jobs' keys holds that line in the database too.
- :func:`run_once` runs a claimed job with the handler registered for its kind, outside any
  transaction (handlers open their own), then records the outcome: succeeded; retried with
  exponential backoff and jitter, honouring a ``Retry-After``; deferred (not counted as an
  attempt, e.g. while a circuit breaker is open); or failed at once on a permanent error.
- :func:`run_worker` is the loop behind ``relgov worker`` and the in-process worker.
- :class:`JobKinds`: which handler runs each kind, and the periodic tasks; an app gets its
  own, filled in ``service/wiring.py`` (:func:`init_app`).

Leases: a claimed job is leased for ``RELGOV_JOB_LEASE_SECONDS`` (600) and, while its handler
runs, a keeper thread renews the lease every third of that, so a long job is not taken over
while its worker lives, and a job whose worker was killed is claimed again by another worker
once the lease runs out (the attempt counts; the publisher is idempotent). Workers on several
machines compare leases with their own clocks: keep the clocks in sync (NTP).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app, has_app_context
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from sqlalchemy import Engine, and_, exists, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

import utc
from service import db, logs, metrics
from service.jobs import breaker
from service.jobs.models import BREAKER_STATES, CircuitBreaker, Job
from service.models import utcnow

_log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)
DEBOUNCE_SECONDS = 5.0
MAX_DEBOUNCE = timedelta(seconds=60)
BACKOFF_BASE_SECONDS = 15.0
BACKOFF_CAP_SECONDS = 30 * 60.0
DEFAULT_MAX_ATTEMPTS = 8
MAX_ERROR_LENGTH = 4000


# --- outcomes a handler may raise ----------------------------------------------------------


class JobError(Exception):
    """Base of the outcomes a handler raises; ``message`` is shown to people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PermanentJobError(JobError):
    """Retrying will not help: the job fails at once."""


class RetryJob(JobError):
    """Try again later (with backoff, and not before ``retry_after`` seconds)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeferJob(JobError):
    """Not now, and not the job's fault: run again at ``until`` without using an attempt."""

    def __init__(self, message: str, *, until: datetime) -> None:
        super().__init__(message)
        self.until = until


# --- the registry of job kinds ---------------------------------------------------------------


@dataclass(frozen=True)
class JobContext:
    """What a handler gets: the app (an app context is active), its job, and the time."""

    app: Flask
    job: Job
    now: datetime
    worker_id: str


Handler = Callable[[JobContext], str | None]
# on_error(session, job, message, final): called in the transaction that records a failed
# attempt (``final`` when the job will not be retried), so a handler's own state lands with it.
ErrorHook = Callable[[Session, Job, str, bool], None]


@dataclass(frozen=True)
class HandlerSpec:
    fn: Handler
    on_error: ErrorHook | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS


class JobKinds:
    """The job kinds an app runs: a handler per kind, and the periodic tasks."""

    def __init__(self) -> None:
        self.handlers: dict[str, HandlerSpec] = {}
        self.periodic: dict[str, float] = {}

    def handler(
        self,
        kind: str,
        fn: Handler,
        *,
        on_error: ErrorHook | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        """Run jobs of ``kind`` with ``fn(ctx) -> short result text | None``.

        ``fn`` raises :class:`RetryJob` / :class:`PermanentJobError` / :class:`DeferJob` to
        say how the attempt ended; any other exception is retried with backoff.
        """
        self.handlers[kind] = HandlerSpec(fn=fn, on_error=on_error, max_attempts=max_attempts)

    def every(self, name: str, seconds: float, fn: Handler) -> None:
        """Run ``fn(ctx)`` about every ``seconds`` on some worker (one at a time).

        Each run is a job of kind and key ``periodic:<name>``; a failed run is not retried,
        the next period runs again.
        """
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        self.handler(f"periodic:{name}", fn, max_attempts=1)
        self.periodic[name] = float(seconds)


_KINDS_KEY = "relgov.job_kinds"


def init_app(app: Flask, kinds: JobKinds) -> None:
    app.extensions[_KINDS_KEY] = kinds


def kinds_of(app: Flask) -> JobKinds:
    """The job kinds ``app`` runs (see ``service/wiring.py``)."""
    kinds: JobKinds = app.extensions[_KINDS_KEY]
    return kinds


def backoff_seconds(attempt: int, *, rng: Callable[[], float] = random.random) -> float:
    """Delay before retry number ``attempt`` (1-based): 15 s doubling, capped, ±20 % jitter."""
    base = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * float(2 ** max(0, attempt - 1)))
    return base * (0.8 + 0.4 * rng())


# --- enqueue ---------------------------------------------------------------------------------


def enqueue(
    session: Session,
    kind: str,
    *,
    key: str | None = None,
    payload: dict[str, Any] | None = None,
    delay: float = 0.0,
    run_at: datetime | None = None,
    run_now: bool = False,
    actor: str = "system",
    max_attempts: int | None = None,
    now: datetime | None = None,
) -> Job:
    """Queue a job in ``session``'s transaction (the caller commits), coalescing by ``key``.

    ``run_now`` (a person pressed "Publish now") moves a coalesced job to now even when it
    was waiting for a retry.
    """
    now = now or utcnow()
    due = run_at or now + timedelta(seconds=delay)
    payload = dict(payload or {})
    if key is not None:
        existing = _queued(session, key)
        if existing is not None and _move(session, existing, due, payload, run_now, now):
            return existing
    # Outside an app (a script, a test) the kind's own attempt limit is not known.
    spec = kinds_of(current_app).handlers.get(kind) if has_app_context() else None
    job = Job(
        kind=kind,
        key=key,
        payload=payload,
        next_run_at=due,
        max_attempts=max_attempts or (spec.max_attempts if spec else DEFAULT_MAX_ATTEMPTS),
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        # Another transaction queued a job for this key between our look and our insert.
        existing = _queued(session, key) if key is not None else None
        if existing is None or not _move(session, existing, due, payload, run_now, now):
            raise
        return existing
    return job


def _queued(session: Session, key: str) -> Job | None:
    return session.exec(select(Job).where(Job.key == key, Job.state == "queued")).first()


def _move(
    session: Session, job: Job, due: datetime, payload: dict[str, Any], run_now: bool, now: datetime
) -> bool:
    """Coalesce into ``job`` if it is still queued; False when it was claimed meanwhile."""
    latest = min(due, job.created_at + MAX_DEBOUNCE)
    next_run = due if run_now else max(job.next_run_at, latest)
    result = session.exec(
        update(Job)
        .where(col(Job.id) == job.id, col(Job.state) == "queued")
        .values(next_run_at=next_run, payload={**job.payload, **payload}, updated_at=now)
    )
    if result.rowcount != 1:
        return False
    session.refresh(job)
    return True


# --- claim -----------------------------------------------------------------------------------


def _claimable(now: datetime) -> Any:
    return or_(
        and_(col(Job.state) == "queued", col(Job.next_run_at) <= now),
        and_(col(Job.state) == "running", col(Job.locked_until) < now),
    )


def _claimable_alone(now: datetime) -> Any:
    """Claimable, and no other job of its key is running, whatever that job's lease says.

    A running job whose worker died keeps its key until it is taken over and ends: the
    job queued for the key meanwhile waits for it, so the two never run together. The
    unique index ``uq_job_running_key`` holds the line in the database as well: a claim
    that slipped past this check (a worker of an older release) fails instead of running.
    """
    other = aliased(Job)
    key_busy = exists().where(
        col(other.key) == col(Job.key),
        col(other.state) == "running",
        col(other.id) != col(Job.id),
    )
    return and_(_claimable(now), or_(col(Job.key).is_(None), ~key_busy))


def claim(
    session: Session,
    worker_id: str,
    *,
    now: datetime | None = None,
    lease: timedelta = LEASE,
) -> Job | None:
    """Take the most overdue claimable job for ``worker_id``, or None. Commit right after."""
    now = now or utcnow()
    condition = _claimable_alone(now)
    postgres = session.get_bind().dialect.name == "postgresql"
    stmt = select(Job.id).where(condition).order_by(col(Job.next_run_at), col(Job.id))
    # SKIP LOCKED: concurrent workers pass over a row another is claiming instead of
    # queueing behind it. SQLite has one writer at a time (BEGIN IMMEDIATE) anyway.
    stmt = stmt.limit(1).with_for_update(skip_locked=True, of=Job) if postgres else stmt.limit(5)
    for job_id in session.exec(stmt).all():
        won = session.exec(
            update(Job)
            .where(col(Job.id) == job_id, condition)
            .values(
                state="running",
                attempts=col(Job.attempts) + 1,
                locked_by=worker_id,
                locked_until=now + lease,
                updated_at=now,
            )
        )
        if won.rowcount == 1:
            job = session.get(Job, job_id)
            assert job is not None
            session.refresh(job)
            return job
    return None


# --- run -------------------------------------------------------------------------------------


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def lease_of(app: Flask) -> timedelta:
    """The lease a worker of ``app`` takes on a job (``RELGOV_JOB_LEASE_SECONDS``)."""
    settings = app.config.get("RELGOV_SETTINGS")
    seconds = getattr(settings, "job_lease_seconds", None) or LEASE.total_seconds()
    return timedelta(seconds=max(1.0, float(seconds)))


def run_once(
    app: Flask, *, worker_id: str | None = None, now: datetime | None = None
) -> Job | None:
    """Claim and run one due job; return it as it ended (None when nothing was due)."""
    worker_id = worker_id or default_worker_id()
    lease = lease_of(app)
    with app.app_context():
        claiming = time.perf_counter()
        with db.session_scope() as session:
            job = claim(session, worker_id, now=now, lease=lease)
        CLAIM_LATENCY.observe(time.perf_counter() - claiming)
        if job is None:
            return None
        waited = ((now or utcnow()) - utc.aware(job.next_run_at)).total_seconds()
        WAIT.labels(job.kind).observe(max(0.0, waited))
        with logs.job_context(job.id, job.kind):
            _log.info("job %s (%s) started, attempt %s", job.id, job.kind, job.attempts)
            started = time.perf_counter()
            keeper = _LeaseKeeper(db.engine(), job, worker_id, lease)
            RUNNING.inc()
            try:
                ended = _execute(app, job, worker_id, now, keeper)
            finally:
                RUNNING.dec()
                keeper.stop()
            elapsed = time.perf_counter() - started
            RUNS.labels(job.kind, ended.state).inc()
            DURATION.labels(job.kind).observe(elapsed)
            level = logging.WARNING if ended.state == "failed" else logging.INFO
            _log.log(
                level,
                "job %s (%s) %s in %.0f ms",
                job.id,
                job.kind,
                ended.state,
                elapsed * 1000,
                extra={"job_state": ended.state, "duration_ms": round(elapsed * 1000, 1)},
            )
            return ended


class _LeaseKeeper:
    """Renews a running job's lease every third of it until stopped (its own connection)."""

    def __init__(self, engine: Engine, job: Job, worker_id: str, lease: timedelta) -> None:
        self.engine, self.job, self.worker_id, self.lease = engine, job, worker_id, lease
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"lease-{self.job.id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        context = logs.job_context(self.job.id, self.job.kind)
        with context:
            while not self._stop.wait(self.lease.total_seconds() / 3):
                try:
                    with Session(self.engine) as session:
                        result = session.exec(
                            update(Job)
                            .where(_owned(self.job, self.worker_id))
                            .values(locked_until=utcnow() + self.lease)
                        )
                        session.commit()
                    if result.rowcount != 1:
                        _log.warning("job %s: lease lost while running", self.job.id)
                        return
                except Exception:  # the database is away: try again at the next renewal
                    _log.warning("job %s: renewing the lease failed", self.job.id, exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _execute(
    app: Flask,
    job: Job,
    worker_id: str,
    now: datetime | None,
    keeper: _LeaseKeeper | None = None,
) -> Job:
    spec = kinds_of(app).handlers.get(job.kind)
    if spec is None:
        FAILURES.labels(job.kind, "failed").inc()
        return _fail(job, worker_id, f"no handler is registered for job kind {job.kind!r}", now)
    if job.attempts > job.max_attempts:
        message = f"gave up after {job.max_attempts} attempts (its worker stopped mid-run)"
        FAILURES.labels(job.kind, "failed").inc()
        return _fail(job, worker_id, message, now, spec)
    ctx = JobContext(app=app, job=job, now=now or utcnow(), worker_id=worker_id)
    if keeper is not None:
        keeper.start()
    try:
        try:
            result = spec.fn(ctx)
        finally:
            if keeper is not None:
                keeper.stop()
    except DeferJob as exc:
        return _requeue(job, worker_id, exc.until, exc.message, now, count_attempt=False)
    except PermanentJobError as exc:
        FAILURES.labels(job.kind, "failed").inc()
        return _fail(job, worker_id, exc.message, now, spec)
    except RetryJob as exc:
        return _failed_attempt(_retry(job, worker_id, exc.message, exc.retry_after, now, spec))
    except Exception as exc:  # a bug or an unexpected failure: retried, and logged in full
        _log.exception("job %s (%s) failed", job.id, job.kind)
        if db.is_disk_full(exc):
            metrics.note_disk_full()
        message = f"{exc.__class__.__name__}: {exc}"
        return _failed_attempt(_retry(job, worker_id, message, None, now, spec))
    return _finish(job, worker_id, "succeeded", now, result=result)


def _failed_attempt(ended: Job) -> Job:
    """Count an attempt that raised: retried later, or failed for good (out of attempts)."""
    FAILURES.labels(ended.kind, "failed" if ended.state == "failed" else "retry").inc()
    return ended


def _owned(job: Job, worker_id: str) -> Any:
    return and_(col(Job.id) == job.id, col(Job.state) == "running", col(Job.locked_by) == worker_id)


def _finish(
    job: Job,
    worker_id: str,
    state: str,
    now: datetime | None,
    *,
    result: str | None = None,
    error: str | None = None,
    spec: HandlerSpec | None = None,
) -> Job:
    now = now or utcnow()
    values: dict[str, Any] = {
        "state": state,
        "locked_by": None,
        "locked_until": None,
        "updated_at": now,
        "finished_at": now,
        "result": (result or "")[:1000] or None,
    }
    if error is not None:
        values["last_error"] = error[:MAX_ERROR_LENGTH]
    with db.session_scope() as session:
        if not _update_owned(session, job, worker_id, values):
            return _reload(job)
        if error is not None and spec is not None and spec.on_error is not None:
            spec.on_error(session, _reload(job, session), error, True)
    return _reload(job)


def _fail(
    job: Job, worker_id: str, message: str, now: datetime | None, spec: HandlerSpec | None = None
) -> Job:
    return _finish(job, worker_id, "failed", now, error=message, spec=spec)


def _retry(
    job: Job,
    worker_id: str,
    message: str,
    retry_after: float | None,
    now: datetime | None,
    spec: HandlerSpec,
) -> Job:
    if job.attempts >= job.max_attempts:
        return _fail(job, worker_id, f"gave up after {job.attempts} attempts: {message}", now, spec)
    moment = now or utcnow()
    delay = max(backoff_seconds(job.attempts), retry_after or 0.0)
    return _requeue(job, worker_id, moment + timedelta(seconds=delay), message, now, spec=spec)


def _requeue(
    job: Job,
    worker_id: str,
    until: datetime,
    message: str,
    now: datetime | None,
    *,
    count_attempt: bool = True,
    spec: HandlerSpec | None = None,
) -> Job:
    now = now or utcnow()
    with db.session_scope() as session:
        newer = _queued(session, job.key) if job.key is not None else None
        if newer is not None:
            # Work for this key was queued while this attempt ran: that job carries on,
            # not before this one's backoff and with its attempts counted.
            session.exec(
                update(Job)
                .where(col(Job.id) == newer.id)
                .values(
                    next_run_at=max(newer.next_run_at, until),
                    attempts=max(newer.attempts, job.attempts - (0 if count_attempt else 1)),
                    last_error=message[:MAX_ERROR_LENGTH],
                    updated_at=now,
                )
            )
            values: dict[str, Any] = {
                "state": "cancelled",
                "locked_by": None,
                "locked_until": None,
                "finished_at": now,
                "updated_at": now,
                "last_error": message[:MAX_ERROR_LENGTH],
                "result": f"superseded by job {newer.id}",
            }
        else:
            values = {
                "state": "queued",
                "locked_by": None,
                "locked_until": None,
                "next_run_at": until,
                "updated_at": now,
                "last_error": message[:MAX_ERROR_LENGTH],
            }
            if not count_attempt:
                values["attempts"] = col(Job.attempts) - 1
        if _update_owned(session, job, worker_id, values) and spec and spec.on_error:
            spec.on_error(session, _reload(job, session), message, False)
    return _reload(job)


def _update_owned(session: Session, job: Job, worker_id: str, values: dict[str, Any]) -> bool:
    result = session.exec(update(Job).where(_owned(job, worker_id)).values(**values))
    if result.rowcount != 1:
        _log.warning("job %s: lease lost before its outcome was recorded", job.id)
        return False
    return True


def _reload(job: Job, session: Session | None = None) -> Job:
    if session is not None:
        fresh = session.get(Job, job.id)
        assert fresh is not None
        session.refresh(fresh)
        return fresh
    with db.session_scope() as own:
        fresh = own.get(Job, job.id)
        assert fresh is not None
        return fresh


def hold_queued(session: Session, kinds: Sequence[str], until: datetime) -> None:
    """Move every queued job of ``kinds`` due before ``until`` to ``until`` (while the
    circuit breaker of the system they call is open, they all wait with it): one UPDATE."""
    session.exec(
        update(Job)
        .where(col(Job.kind).in_(kinds), col(Job.state) == "queued", col(Job.next_run_at) < until)
        .values(next_run_at=until, updated_at=utcnow())
    )


def wait_for_breaker(
    session: Session, name: str, *, system: str, kinds: Sequence[str], now: datetime
) -> None:
    """Before an attempt that calls ``system``: while its circuit breaker ``name`` is open,
    this job and every queued job of ``kinds`` wait with it (:class:`DeferJob`)."""
    decision = breaker.before_call(session, name, now=now)
    if decision.allowed:
        return
    assert decision.retry_at is not None
    hold_queued(session, kinds, decision.retry_at)
    raise DeferJob(
        f"{system} circuit breaker is {decision.state.replace('_', '-')}: waiting until "
        f"{decision.retry_at:%Y-%m-%d %H:%M:%S} UTC",
        until=decision.retry_at,
    )


# --- operator actions -------------------------------------------------------------------------


def retry_job(session: Session, job: Job, *, actor: str, now: datetime | None = None) -> Job:
    """Run ``job`` again now: a queued job is moved to now, a finished one is queued anew."""
    now = now or utcnow()
    if job.state == "running":
        raise PermanentJobError("this job is running right now")
    if job.state == "queued":
        _move(session, job, now, {}, True, now)
        return job
    return enqueue(
        session,
        job.kind,
        key=job.key,
        payload={**job.payload, "actor": actor},
        run_now=True,
        actor=actor,
        now=now,
    )


def recent_jobs(session: Session, *, kind: str | None = None, limit: int = 50) -> list[Job]:
    stmt = select(Job).order_by(col(Job.updated_at).desc(), col(Job.id).desc()).limit(limit)
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    return list(session.exec(stmt).all())


def latest_job(session: Session, key: str) -> Job | None:
    """The queued or running job for ``key`` if any, else the most recent one."""
    active = session.exec(
        select(Job)
        .where(Job.key == key, col(Job.state).in_(("queued", "running")))
        .order_by(col(Job.id).desc())
    ).first()
    if active is not None:
        return active
    return session.exec(select(Job).where(Job.key == key).order_by(col(Job.id).desc())).first()


def count_by_state(session: Session) -> dict[str, int]:
    rows = session.exec(select(Job.state, func.count()).group_by(Job.state)).all()
    return {state: int(n) for state, n in rows}


# --- metrics ----------------------------------------------------------------------------------

RUNS = Counter(
    "relgov_job_runs_total",
    "Job attempts run by this process, by kind and outcome",
    ["kind", "state"],
)
DURATION = Histogram(
    "relgov_job_duration_seconds",
    "Time a job attempt took, by kind",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
FAILURES = Counter(
    "relgov_job_failures_total",
    "Job attempts run by this process that ended in an error, by kind and outcome "
    "(retry: it runs again later; failed: for good)",
    ["kind", "outcome"],
)
CLAIM_LATENCY = Histogram(
    "relgov_job_claim_seconds",
    "Time this process's claims of the next due job took (a database round trip, including "
    "waits on locks), whether or not a job was due",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
WAIT = Histogram(
    "relgov_job_wait_seconds",
    "How long a job had been due when this process claimed it, by kind",
    ["kind"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
RUNNING = Gauge(
    "relgov_worker_running_jobs",
    "Jobs this process is running right now (0 or 1 per worker loop)",
    multiprocess_mode="liveall",
)
LAST_LOOP = Gauge(
    "relgov_worker_last_loop_timestamp_seconds",
    "Unix time each worker loop of this process last reached the queue, by worker id (it "
    "stands still while a job runs: see relgov_worker_running_jobs)",
    ["worker"],
    multiprocess_mode="liveall",
)
LOOP_FAILURES = Counter(
    "relgov_worker_loop_failures_total",
    "Passes of this process's worker loop that failed (e.g. the database was away)",
)
# What a job worker's own /metrics shows (RELGOV_WORKER_METRICS_PORT): its work, and the
# process (CPU, memory, garbage collection). The queue gauges below are read from the
# database by the web processes' /metrics and are the same whichever process answers.
WORKER_METRICS = (
    RUNS,
    DURATION,
    FAILURES,
    CLAIM_LATENCY,
    WAIT,
    RUNNING,
    LAST_LOOP,
    LOOP_FAILURES,
    metrics.DISK_FULL_ERRORS,
)


def worker_registry() -> CollectorRegistry:
    """A registry of the worker's own metrics, for the endpoint ``relgov worker`` serves."""
    registry = CollectorRegistry()
    for collector in (*WORKER_METRICS, PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


# Read from the database when /metrics is scraped: the same figures whichever process answers.
QUEUE = Gauge(
    "relgov_jobs_by_kind",
    "Jobs queued, running or failed, by kind",
    ["kind", "state"],
    multiprocess_mode="livemostrecent",
)
OLDEST_DUE = Gauge(
    "relgov_jobs_oldest_due_seconds",
    "How long the oldest due queued job has been waiting for a worker (0: none waiting)",
    multiprocess_mode="livemostrecent",
)
RETRY_WAIT = Gauge(
    "relgov_jobs_next_retry_seconds",
    "Seconds until the next retry of a failed attempt is due, by kind (0: no retry waiting)",
    ["kind"],
    multiprocess_mode="livemostrecent",
)
RETRYING = Gauge(
    "relgov_jobs_retrying",
    "Queued jobs waiting to retry after a failed attempt, by kind",
    ["kind"],
    multiprocess_mode="livemostrecent",
)
EXPIRED_LEASES = Gauge(
    "relgov_jobs_expired_leases",
    "Running jobs whose lease ran out (their worker died; another worker will take them)",
    multiprocess_mode="livemostrecent",
)
BREAKERS = Gauge(
    "relgov_circuit_breaker_state",
    "Circuit breakers: 1 for the state each is in (closed, open, half_open), else 0",
    ["name", "state"],
    multiprocess_mode="livemostrecent",
)
BREAKER_FAILURES = Gauge(
    "relgov_circuit_breaker_failures",
    "Consecutive transient failures a breaker has counted",
    ["name"],
    multiprocess_mode="livemostrecent",
)
_SEEN_KINDS: set[str] = set()
_GAUGE_STATES = ("queued", "running", "failed")


def collect_metrics(now: datetime | None = None) -> None:
    """A ``/metrics`` collector: the queue as the database has it right now."""
    now = now or utcnow()
    with db.session_scope() as session:
        counts = session.exec(
            select(Job.kind, Job.state, func.count())
            .where(col(Job.state).in_(_GAUGE_STATES))
            .group_by(Job.kind, Job.state)
        ).all()
        oldest = session.exec(
            select(func.min(Job.next_run_at)).where(Job.state == "queued", Job.next_run_at <= now)
        ).one()
        retries = session.exec(
            select(Job.kind, func.count(), func.min(Job.next_run_at))
            .where(Job.state == "queued", Job.attempts > 0)
            .group_by(Job.kind)
        ).all()
        expired = session.exec(
            select(func.count()).where(Job.state == "running", col(Job.locked_until) < now)
        ).one()
        breakers = session.exec(
            select(CircuitBreaker.name, CircuitBreaker.state, CircuitBreaker.failures)
        ).all()
    for name, state, failures in breakers:
        for candidate in BREAKER_STATES:
            BREAKERS.labels(name, candidate).set(1 if candidate == state else 0)
        BREAKER_FAILURES.labels(name).set(failures)
    by_kind = {(kind, state): int(n) for kind, state, n in counts}
    waiting = {kind: (int(n), first) for kind, n, first in retries}
    _SEEN_KINDS.update(kind for kind, _ in by_kind)
    _SEEN_KINDS.update(waiting)
    for kind in _SEEN_KINDS:
        for state in _GAUGE_STATES:
            QUEUE.labels(kind, state).set(by_kind.get((kind, state), 0))
        n, first = waiting.get(kind, (0, None))
        RETRYING.labels(kind).set(n)
        delay = (utc.aware(first) - now).total_seconds() if first is not None else 0.0
        RETRY_WAIT.labels(kind).set(max(0.0, delay))
    OLDEST_DUE.set((now - utc.aware(oldest)).total_seconds() if oldest is not None else 0.0)
    EXPIRED_LEASES.set(int(expired))


# --- periodic tasks and the loop ---------------------------------------------------------


def schedule_periodic(session: Session, *, now: datetime | None = None) -> None:
    """Make sure each periodic task of the current app has its next run queued."""
    now = now or utcnow()
    for name, every in kinds_of(current_app).periodic.items():
        key = f"periodic:{name}"
        pending = session.exec(
            select(Job.id).where(Job.key == key, col(Job.state).in_(("queued", "running")))
        ).first()
        if pending is not None:
            continue
        last = session.exec(select(func.max(Job.finished_at)).where(Job.key == key)).one()
        due = now if last is None else max(now, utc.aware(last) + timedelta(seconds=every))
        enqueue(session, key, key=key, run_at=due, actor="system:scheduler", now=now)


@dataclass
class WorkerStats:
    runs: int = 0
    by_state: dict[str, int] = field(default_factory=dict)


def run_worker(
    app: Flask,
    *,
    once: bool = False,
    poll_seconds: float = 1.0,
    stop_event: threading.Event | None = None,
    worker_id: str | None = None,
    on_job: Callable[[Job], None] | None = None,
) -> WorkerStats:
    """Work the queue until ``stop_event`` is set; with ``once``, run what is due and return."""
    stop = stop_event or threading.Event()
    worker_id = worker_id or default_worker_id()
    stats = WorkerStats()
    alive = LAST_LOOP.labels(worker_id)
    while not stop.is_set():
        try:
            with app.app_context(), db.session_scope() as session:
                schedule_periodic(session)
            alive.set_to_current_time()
            # Bounded so a job that keeps coming due at once cannot spin forever.
            for _ in range(1000):
                if stop.is_set():
                    break
                job = run_once(app, worker_id=worker_id)
                alive.set_to_current_time()
                if job is None:
                    break
                stats.runs += 1
                stats.by_state[job.state] = stats.by_state.get(job.state, 0) + 1
                if on_job is not None:
                    on_job(job)
        except Exception as exc:  # the database went away, say: keep the worker alive and retry
            LOOP_FAILURES.inc()
            if db.is_disk_full(exc):
                metrics.note_disk_full()
            _log.exception("worker %s: loop failed; retry in %.0f s", worker_id, poll_seconds)
            if once:
                raise
        if once:
            break
        stop.wait(poll_seconds)
    return stats


def start_in_process_worker(app: Flask) -> None:
    """The ``relgov.background`` starter ``relgov run`` calls in a daemon thread."""
    _log.info("in-process job worker started")
    run_worker(app, poll_seconds=2.0)
