"""Publishing a release's notes to Notion as a background job, behind a circuit breaker.

One job per release (key ``release:<id>``, coalesced). An attempt:

1. (transaction) refuses at once when Notion is not configured or the release has no notes;
   waits when the breaker is open; otherwise marks the note "publishing";
2. (no transaction held) ``NotionPublisher.publish`` — one attempt, idempotent: writes only
   the blocks that differ from what the page's ledger (:class:`DbLedger`, table
   ``notion_page``) says was published, saving each step's progress in its own short
   transaction, so a retry goes on from where the failed attempt stopped. Every request
   takes a token from the rate limit all workers share (``service.jobs.throttle``); a 429
   asking to wait at most :data:`RETRY_AFTER_MAX_S` is waited out within the attempt;
3. (transaction) records the page, the hash and the time, closes the breaker, and writes
   the audit event. A failed attempt is recorded by the job runner through
   :func:`on_publish_error` in the same transaction as the job's own state.

A create whose answer was lost is not repeated until Notion's search has had
``RELGOV_NOTION_CREATE_SETTLE_SECONDS`` to show it (the job is deferred, not failed); if a
second create happens all the same, a follow-up job looks for the first page and trashes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app, has_app_context
from prometheus_client import Gauge
from sqlalchemy import Engine
from sqlalchemy import inspect as sa_inspect
from sqlmodel import Session, select

from release_notes.notion import (
    CreateUnconfirmed,
    Ledger,
    NotionConfig,
    NotionError,
    NotionPublisher,
    PageContent,
    PageRecord,
    PageSchema,
    PageSpec,
    PermanentNotionError,
    PublishResult,
    RateLimiter,
    SchemaCache,
    SchemaReport,
    TransientNotionError,
    notes_hash,
)
from release_notes.notion_blocks import Block
from service import audit, db, jobs
from service.errors import DomainError
from service.jobs import breaker
from service.jobs.models import Job
from service.models import utcnow
from service.publishing.models import NotionPage
from service.releases.models import App, Release, ReleaseNote
from service.releases.notes import note_for
from service.settings import Settings

KIND = "notion_publish"
BREAKER = "notion"
ACTOR = "system:publisher"
NOT_CONFIGURED = (
    "Notion is not configured: set NOTION_TOKEN and NOTION_DATABASE_ID (or "
    "NOTION_DATA_SOURCE_ID) for the service, then publish again."
)
STATE_LABELS = {
    "draft": "Not published",
    "queued": "Queued",
    "publishing": "Publishing",
    "published": "Published",
    "failed": "Failed",
}
STATE_BADGES = {
    "draft": "",
    "queued": "info",
    "publishing": "info",
    "published": "good",
    "failed": "bad",
}
RELEASE_STATE_LABELS = {
    "draft": "draft",
    "in_review": "in review",
    "approved": "approved, not yet in stores",
    "beta": "in beta stores",
    "rolling_out": "rolling out to all stores",
    "released": "released to all stores",
    "rejected": "rejected",
    "halted": "halted",
    "cancelled": "cancelled",
}
# Later transitions that bring an already published page up to date.
FOLLOW_STATES = frozenset({"beta", "rolling_out", "released", "halted"})
# A 429 asking to wait at most this long is waited out within the attempt (the same
# request sent again, up to 3 times); a longer one ends the attempt and the job waits.
RETRY_AFTER_MAX_S = 30.0
LIMITER = "relgov.notion_limiter"
SCHEMA_CACHE = "relgov.notion_schema"


def stored_hash(value: str) -> str:
    """The hash as ``ReleaseNote.published_hash`` keeps it: 64 hex digits, no ``sha256:``."""
    return value.removeprefix("sha256:")


def job_key(release_id: int | None) -> str:
    return f"release:{release_id}"


def settings_of(app: Flask | None = None) -> Settings:
    target = app or current_app
    result: Settings = target.config["RELGOV_SETTINGS"]
    return result


# --- the Notion side ------------------------------------------------------------------------


def notion_config(
    settings: Settings,
    *,
    timeout_s: float = 30.0,
    database_id: str | None = None,
    schema: PageSchema | None = None,
) -> NotionConfig:
    """The publisher's config. notion-client's own retries are off: a short ``Retry-After``
    is waited out by the publisher (every worker pausing with it), anything else is retried
    by the job queue, with backoff, counting attempts where people can see them.

    ``database_id`` and ``schema`` name another kind of page (a week's minutes) in a
    database of its own; by default, the release notes'."""
    if database_id is None and not settings.notion_configured:
        raise jobs.PermanentJobError(NOT_CONFIGURED)
    if database_id is not None and not (settings.notion_token and database_id):
        raise jobs.PermanentJobError(NOT_CONFIGURED)
    extra: dict[str, Any] = {"schema": schema} if schema is not None else {}
    return NotionConfig(
        token=settings.notion_token,
        database_id=database_id or settings.notion_database_id or None,
        data_source_id=None if database_id else settings.notion_data_source_id or None,
        base_url=settings.notion_base_url or None,
        timeout_s=timeout_s,
        max_retries=0,
        retry_after_max_s=RETRY_AFTER_MAX_S,
        create_settle_s=settings.notion_create_settle_seconds,
        **extra,
    )


def make_publisher(
    app: Flask,
    *,
    clock: Callable[[], float] | None = None,
    wait_out_429: bool = True,
    database_id: str | None = None,
    schema: PageSchema | None = None,
) -> NotionPublisher:
    """A publisher sharing the app's rate limiter (every worker's) and schema cache; to the
    release-notes database unless ``database_id`` (and ``schema``) say otherwise.
    ``wait_out_429=False`` (a web request) raises a 429 at once instead of waiting."""
    config = notion_config(
        settings_of(app),
        timeout_s=float(app.config.get("RELGOV_NOTION_TIMEOUT", 30.0)),
        database_id=database_id,
        schema=schema,
    )
    if not wait_out_429:
        config = replace(config, retry_after_max_s=0.0)
    limiter: RateLimiter = app.extensions[LIMITER]
    schema_cache: SchemaCache | None = app.extensions.get(SCHEMA_CACHE)
    return NotionPublisher(
        config, limiter=limiter, schema_cache=schema_cache, clock=clock or time.time
    )


class DbLedger:
    """A page's :class:`PageRecord` in a ledger table keyed by its subject's id: each save
    is its own short transaction (never one held across a Notion call).

    A release's notes: table ``notion_page``; a release published before the table existed
    starts from the page id its note kept. Another kind of page gives its own ``table``
    (a SQLModel with the subject's id as primary key and ``page_id``, ``publish_key``,
    ``state``, ``updated_at``)."""

    def __init__(self, engine: Engine, release_id: int, *, table: type[Any] = NotionPage) -> None:
        self.engine = engine
        self.release_id = release_id  # the subject: a release, or what ``table`` is about
        self.table = table

    def load(self) -> PageRecord:
        with db.session_scope(self.engine) as session:
            row = session.get(self.table, self.release_id)
            if row is not None:
                return PageRecord.from_json(row.page_id, row.publish_key, row.state)
            if self.table is not NotionPage:
                return PageRecord()
            note = session.exec(
                select(ReleaseNote).where(ReleaseNote.release_id == self.release_id)
            ).first()
            return PageRecord(page_id=note.notion_page_id if note else None)

    def save(self, record: PageRecord) -> None:
        with db.session_scope(self.engine) as session:
            row = session.get(self.table, self.release_id)
            if row is None:
                key = sa_inspect(self.table).primary_key[0].name
                row = self.table(**{key: self.release_id}, publish_key=record.key)
            row.page_id = record.page_id
            row.publish_key = record.key
            row.state = record.to_json()
            row.updated_at = utcnow()
            session.add(row)


def check_schema(*, init: bool = False) -> SchemaReport:
    """``relgov notion check`` / ``init-schema`` (the current app); a transient error is
    raised."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    # Also run from a page: a 429 is reported at once rather than holding the request.
    with make_publisher(app, wait_out_429=False) as publisher:
        return publisher.init_schema() if init else publisher.check_schema()


def page_content(release: Release, note: ReleaseNote, app: App, settings: Settings) -> PageContent:
    """What the Notion page of ``release`` should say."""
    link = f"{settings.base_url}/releases/{release.id}"
    released: datetime | None = release.released_at or release.scheduled_for
    state = RELEASE_STATE_LABELS.get(release.state, release.state.replace("_", " "))
    # Support staff read the page to know whether a version is in stores yet; this line is
    # why a state change updates the page.
    header = f"> **Release state:** {state} · [Open in release governance]({link})\n\n"
    return PageContent(
        version=release.version,
        markdown=header + note.markdown,
        app=app.name,
        release_date=released.date() if released else None,
        commits=note.commit_count,
        breaking_changes=note.breaking_count,
        release_link=link,
    )


# --- requests from people and from the lifecycle ------------------------------------------


class PublishRefused(DomainError):
    """Publishing cannot be asked for (no notes yet); the message says why."""

    status = 409
    code = "no_notes"


class NotionNotConfigured(DomainError):
    """A person asked to publish while Notion is not configured: nothing is queued."""

    status = 409
    code = "notion_not_configured"


def request_publish(
    session: Session,
    release: Release,
    *,
    actor: str,
    run_now: bool = True,
    delay: float = 0.0,
    reason: str = "requested",
) -> Job:
    """Queue (or coalesce into) the publish job of ``release`` in the caller's transaction.

    Refused (409, nothing queued) while Notion is not configured: the job could only fail."""
    if has_app_context() and not settings_of().notion_configured:
        raise NotionNotConfigured(NOT_CONFIGURED)
    note = note_for(session, release)
    if note is None:
        raise PublishRefused("this release has no release notes yet; generate them first")
    job = jobs.enqueue(
        session,
        KIND,
        key=job_key(release.id),
        payload={"release_id": release.id, "actor": actor, "reason": reason},
        delay=delay,
        run_now=run_now,
        actor=actor,
    )
    before = note.publish_state
    if before != "queued":
        note.publish_state = "queued"
        session.add(note)
    _audit_state(
        session,
        release,
        actor,
        "notes.publish_queued",
        before,
        {"publish_state": "queued", "job": job.id, "reason": reason},
        f"queued publishing {release.version} notes to Notion ({reason})",
    )
    return job


def _audit_state(
    session: Session,
    release: Release,
    actor: str,
    action: str,
    before: str,
    after: dict[str, Any],
    summary: str,
) -> None:
    """Audit a move of a release's publish state (a failure is highlighted)."""
    audit.record(
        session,
        actor=actor,
        action=action,
        subject_type="release",
        subject_id=release.id,
        before={"publish_state": before},
        after=after,
        summary=summary,
        highlight=action == "notes.publish_failed",
    )


def _auto_enabled(session: Session, release: Release) -> bool:
    app = session.get(App, release.app_id)
    if app is None or not app.auto_publish:
        return False
    # Without Notion there is nothing to bring up to date; a person pressing "Publish" still
    # gets a job that fails saying so.
    return not has_app_context() or settings_of().notion_configured


def on_release_transition(
    session: Session, release: Release, before: str, after: str, actor: Any
) -> None:
    """Lifecycle listener: approval queues the notes; later states refresh a published page."""
    if not _auto_enabled(session, release):
        return
    note = note_for(session, release)
    if note is None:
        return
    if after == "approved" or (after in FOLLOW_STATES and note.publish_state != "draft"):
        request_publish(
            session,
            release,
            actor=getattr(actor, "name", ACTOR),
            run_now=False,
            delay=jobs.DEBOUNCE_SECONDS,
            reason=f"release {after.replace('_', ' ')}",
        )


def approve_consequence(session: Session, release: Release) -> str:
    """What approving does to the notes in Notion, for the confirmation."""
    app = session.get(App, release.app_id)
    if app is None or not app.auto_publish or note_for(session, release) is None:
        return ""
    if not settings_of().notion_configured:
        return "Notion is not configured, so the notes will not be published."
    return "Its release notes are queued for publishing to Notion."


def notes_edited(session: Session, release: Release, actor: str, before: str = "") -> Job | None:
    """Call after a note is edited: queues a (coalesced, debounced) publish when the notes
    are auto-published — the release is approved or later, or its notes were published."""
    if not _auto_enabled(session, release):
        return None
    note = note_for(session, release)
    if note is None:
        return None
    if release.state not in FOLLOW_STATES | {"approved"} and note.publish_state == "draft":
        return None
    return request_publish(
        session,
        release,
        actor=actor,
        run_now=False,
        delay=jobs.DEBOUNCE_SECONDS,
        reason="notes edited",
    )


# --- the job handler ------------------------------------------------------------------------


def _load(session: Session, job: Job) -> tuple[Release, ReleaseNote, App]:
    release_id = job.payload.get("release_id")
    release = session.get(Release, release_id) if isinstance(release_id, int) else None
    if release is None:
        raise jobs.PermanentJobError(f"release {release_id} no longer exists")
    note = note_for(session, release)
    if note is None:
        raise jobs.PermanentJobError("this release has no release notes yet")
    app = session.get(App, release.app_id)
    assert app is not None
    return release, note, app


def handle_publish(ctx: jobs.JobContext) -> str:
    """One publish attempt (see the module docstring)."""
    settings = settings_of(ctx.app)
    if not settings.notion_configured:
        raise jobs.PermanentJobError(NOT_CONFIGURED)
    with db.session_scope() as session:
        release, note, app = _load(session, ctx.job)
        wait_for_breaker(session, ctx, kinds=(KIND,))
        content = page_content(release, note, app, settings)
        note.publish_state = "publishing"
        session.add(note)
        release_id = release.id
    assert release_id is not None
    ledger = DbLedger(ctx.app.extensions["relgov.engine"], release_id)
    result = publish_attempt(ctx, content, ledger)
    with db.session_scope() as session:
        breaker.record_success(session, BREAKER, now=ctx.now)
        release, note, _ = _load(session, ctx.job)
        _record_published(session, release, note, result, ctx)
    return f"{result.action} {result.url or result.page_id} ({result.requests} requests)"


def wait_for_breaker(session: Session, ctx: jobs.JobContext, *, kinds: tuple[str, ...]) -> None:
    """Before an attempt: while the Notion breaker is open, this job and every waiting job
    of ``kinds`` wait with it (:class:`jobs.DeferJob`)."""
    jobs.wait_for_breaker(session, BREAKER, system="Notion", kinds=kinds, now=ctx.now)


def publish_attempt(
    ctx: jobs.JobContext,
    page: PageSpec,
    ledger: Ledger,
    *,
    blocks: list[Block] | None = None,
    database_id: str | None = None,
    schema: PageSchema | None = None,
) -> PublishResult:
    """One attempt at ``page`` (no transaction held): Notion's errors become the job's
    (deferred, retried, failed) and the breaker hears of them. The caller records a success
    (``breaker.record_success``) with what it publishes."""
    started = time.monotonic()

    def clock() -> float:  # the job's time (tests move it), advancing with the attempt
        return ctx.now.timestamp() + (time.monotonic() - started)

    try:
        with make_publisher(
            ctx.app, clock=clock, database_id=database_id, schema=schema
        ) as publisher:
            return publisher.publish(page, blocks=blocks, ledger=ledger)
    except CreateUnconfirmed as exc:
        with db.session_scope() as session:  # Notion answered: it is up
            breaker.record_success(session, BREAKER, now=ctx.now)
        raise jobs.DeferJob(
            notion_message(exc), until=ctx.now + timedelta(seconds=exc.wait_s + 1)
        ) from exc
    except TransientNotionError as exc:
        with db.session_scope() as session:
            breaker.record_failure(session, BREAKER, str(exc), now=ctx.now)
        raise jobs.RetryJob(notion_message(exc), retry_after=exc.retry_after) from exc
    except PermanentNotionError as exc:
        with db.session_scope() as session:  # Notion answered: it is up
            breaker.record_success(session, BREAKER, now=ctx.now)
        raise jobs.PermanentJobError(notion_message(exc)) from exc


def notion_message(exc: NotionError) -> str:
    """What a failed attempt says: Notion's status and code, then its message."""
    where = f"Notion answered {exc.status} {exc.code}: " if exc.status else ""
    if not exc.status and exc.code:
        where = f"Notion request failed ({exc.code}): "
    return f"{where}{exc.message}"


def _record_published(
    session: Session,
    release: Release,
    note: ReleaseNote,
    result: PublishResult,
    ctx: jobs.JobContext,
) -> None:
    before = {
        "publish_state": note.publish_state,
        "notion_page_id": note.notion_page_id,
        "published_hash": note.published_hash,
    }
    pending = follow_up(
        session, result, KIND, job_key(release.id), {"release_id": release.id}, now=ctx.now
    )
    note.publish_state = "queued" if pending else "published"
    note.notion_page_id = result.page_id
    note.notion_url = result.url
    if result.action != "skipped" or note.published_hash != stored_hash(result.notes_hash):
        note.published_at = ctx.now
    note.published_hash = stored_hash(result.notes_hash)
    note.last_publish_error = None
    session.add(note)
    verb = {"created": "created", "updated": "updated", "skipped": "unchanged, skipped"}
    audit.record(
        session,
        actor=str(ctx.job.payload.get("actor") or ACTOR),
        action="notes.published",
        subject_type="release",
        subject_id=release.id,
        before=before,
        after={
            "publish_state": note.publish_state,
            "notion_page_id": note.notion_page_id,
            "published_hash": note.published_hash,
            "action": result.action,
            "job": ctx.job.id,
        },
        summary=f"notes of {release.version} published to Notion ({verb[result.action]})",
    )


def follow_up(
    session: Session,
    result: PublishResult,
    kind: str,
    key: str,
    payload: dict[str, Any],
    *,
    now: datetime,
) -> bool:
    """After a successful attempt: whether another job of ``key`` is queued (the page is not
    final yet). A second page created while the first create's outcome was unknown queues
    one: it looks again once Notion's search has caught up, and trashes the page not kept."""
    if result.recheck_after is not None:
        jobs.enqueue(
            session,
            kind,
            key=key,
            payload={**payload, "actor": ACTOR, "reason": "duplicate check"},
            delay=result.recheck_after + 1,
            run_now=False,
            actor=ACTOR,
            now=now,
        )
    pending = session.exec(select(Job.id).where(Job.key == key, Job.state == "queued")).first()
    return pending is not None


def on_publish_error(session: Session, job: Job, message: str, final: bool) -> None:
    """A failed attempt, in the transaction that records it: the note says so."""
    release_id = job.payload.get("release_id")
    release = session.get(Release, release_id) if isinstance(release_id, int) else None
    if release is None:
        return
    note = note_for(session, release)
    if note is None:
        return
    before = note.publish_state
    note.publish_state = "failed" if final else "queued"
    note.last_publish_error = message[:2000]
    session.add(note)
    if final:
        _audit_state(
            session,
            release,
            ACTOR,
            "notes.publish_failed",
            before,
            {"publish_state": "failed", "error": message[:500], "job": job.id},
            f"publishing {release.version} notes to Notion failed: {message[:200]}",
        )


# --- status for pages, the API and /metrics ---------------------------------------------


def breaker_status(session: Session, *, now: datetime | None = None) -> dict[str, Any]:
    row = breaker.current(session, BREAKER)
    return {
        "state": row.state,
        "open": row.state != "closed",
        "failures": row.failures,
        "opened_at": row.opened_at,
        "retry_at": row.retry_at,
        "last_error": row.last_error,
    }


def job_status(job: Job | None) -> dict[str, Any] | None:
    if job is None:
        return None
    return {
        "id": job.id,
        "state": job.state,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "next_run_at": job.next_run_at,
        "last_error": job.last_error,
        "result": job.result,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "finished_at": job.finished_at,
    }


def publish_status(
    session: Session, release: Release, *, settings: Settings | None = None
) -> dict[str, Any]:
    """Everything the release page shows about publishing its notes to Notion."""
    settings = settings or settings_of()
    note = note_for(session, release)
    app = session.get(App, release.app_id)
    job = jobs.latest_job(session, job_key(release.id))
    state = note.publish_state if note else "draft"
    if state == "failed":
        button = "Retry"
    elif state == "published":
        button = "Publish again"
    else:
        button = "Publish now"
    return {
        "release_id": release.id,
        "configured": settings.notion_configured,
        "auto_publish": bool(app and app.auto_publish),
        "has_note": note is not None,
        "state": state,
        "state_label": STATE_LABELS.get(state, state),
        "badge": STATE_BADGES.get(state, ""),
        "notion_url": note.notion_url if note else None,
        "notion_page_id": note.notion_page_id if note else None,
        "published_at": note.published_at if note else None,
        "published_hash": note.published_hash if note else None,
        "last_error": note.last_publish_error if note else None,
        "up_to_date": bool(
            note
            and note.published_hash
            and app
            and note.published_hash
            == stored_hash(notes_hash(page_content(release, note, app, settings)))
        ),
        "job": job_status(job),
        "breaker": breaker_status(session),
        "button": button,
        "can_publish": note is not None,
        # Why "Publish now" is disabled (None: it is not).
        "disabled_reason": None if settings.notion_configured else NOT_CONFIGURED,
    }


CIRCUIT_OPEN = Gauge(
    "relgov_notion_circuit_open",
    "1 while the Notion circuit breaker is open or probing (publishing waits)",
    multiprocess_mode="livemostrecent",
)
JOBS = Gauge(
    "relgov_jobs",
    "Background jobs by state",
    ["state"],
    multiprocess_mode="livemostrecent",
)


def collect_metrics() -> None:
    """A ``/metrics`` collector: breaker state and job counts, read from the database."""
    with db.session_scope() as session:
        CIRCUIT_OPEN.set(1 if breaker.current(session, BREAKER).state != "closed" else 0)
        counts = jobs.count_by_state(session)
    for state in ("queued", "running", "succeeded", "failed", "cancelled"):
        JOBS.labels(state).set(counts.get(state, 0))
