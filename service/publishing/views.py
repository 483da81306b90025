"""Pages: "Publish now / Retry" on a release, and the admin page /admin/notion."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlmodel import Session, select
from werkzeug.wrappers import Response

from release_notes.notion import NotionError, SchemaReport
from service import audit, db, jobs
from service.auth import current_actor, roles_required
from service.errors import refusal_goes_back
from service.jobs.models import Job
from service.publishing import notion_publish
from service.releases.models import Release
from service.releases.notes import note_for

bp = Blueprint("publishing", __name__)
admin_required = roles_required("admin")


def release_page(release_id: int) -> str:
    # The release page belongs to the releases feature; its path is stable.
    return f"/releases/{release_id}"


def publish_panel(session: Session, release: Release) -> dict[str, Any]:
    """The release page's Notion panel (``publishing/_release_publish.html``)."""
    return notion_publish.publish_status(session, release)


@bp.post("/releases/<int:release_id>/publish")
@roles_required("release_manager", "engineer")
@refusal_goes_back("Not queued", release_page)
def publish(release_id: int) -> Response:
    session = db.session()
    release = session.get(Release, release_id)
    if release is None:
        abort(404)
    job = notion_publish.request_publish(
        session, release, actor=current_actor(), reason="requested from the release page"
    )
    session.commit()
    flash(f"Publishing {release.version} notes to Notion (job {job.id}).", "info")
    return redirect(release_page(release_id) + "#publishing")


@bp.get("/admin/notion")
@admin_required
def admin_notion() -> str:
    session = db.session()
    settings = notion_publish.settings_of()
    report: SchemaReport | None = None
    check_error: str | None = None
    if request.args.get("check") and settings.notion_configured:
        try:
            report = notion_publish.check_schema()
        except NotionError as exc:
            check_error = str(exc)
    recent = jobs.recent_jobs(session, limit=50)
    release_ids = {
        j.payload.get("release_id") for j in recent if isinstance(j.payload.get("release_id"), int)
    }
    releases = (
        {
            r.id: r
            for r in session.exec(
                select(Release).where(Release.id.in_(release_ids))  # type: ignore[union-attr]
            ).all()
        }
        if release_ids
        else {}
    )
    return render_template(
        "publishing/admin_notion.html",
        settings=settings,
        report=report,
        check_error=check_error,
        jobs=recent,
        counts=jobs.count_by_state(session),
        releases=releases,
        breaker=notion_publish.breaker_status(session),
    )


@bp.post("/admin/notion/init-schema")
@admin_required
def admin_init_schema() -> Response:
    settings = notion_publish.settings_of()
    if not settings.notion_configured:
        flash(notion_publish.NOT_CONFIGURED, "error")
        return redirect(url_for("publishing.admin_notion"))
    try:
        report = notion_publish.check_schema(init=True)
    except NotionError as exc:
        flash(f"Notion refused to add the properties: {exc}", "error")
        return redirect(url_for("publishing.admin_notion"))
    session = db.session()
    audit.record(
        session,
        actor=current_actor(),
        action="notion.init_schema",
        subject_type="notion",
        subject_id=report.data_source_id or "-",
        after={"ok": report.ok, "missing": list(report.missing)},
        summary="added the release-notes properties to the Notion data source",
    )
    session.commit()
    flash("The Notion data source has every property the service writes.", "success")
    return redirect(url_for("publishing.admin_notion", check=1))


@bp.post("/admin/notion/jobs/<int:job_id>/retry")
@admin_required
def admin_retry(job_id: int) -> Response:
    session = db.session()
    job = session.get(Job, job_id)
    if job is None:
        abort(404)
    before = job.state
    try:
        again = jobs.retry_job(session, job, actor=current_actor())
    except jobs.JobError as exc:
        flash(exc.message, "error")
        return redirect(url_for("publishing.admin_notion"))
    release_id = job.payload.get("release_id")
    if job.kind == notion_publish.KIND and isinstance(release_id, int):
        release = session.get(Release, release_id)
        note = note_for(session, release) if release else None
        if note is not None and note.publish_state != "queued":
            note.publish_state = "queued"
            session.add(note)
    audit.record(
        session,
        actor=current_actor(),
        action="job.retry",
        subject_type="job",
        subject_id=job.id,
        before={"state": before},
        after={"job": again.id, "state": again.state},
        summary=f"asked to run {job.kind} job {job.id} again now",
    )
    session.commit()
    flash(f"Job {again.id} will run now.", "info")
    return redirect(url_for("publishing.admin_notion"))
