"""API: publish a release's notes to Notion, and read where that stands."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from service import db
from service.api.errors import ApiError
from service.api.operations import Routes
from service.auth import current_actor
from service.publishing import notion_publish
from service.releases.models import Release

routes = Routes(tag="Publishing")


class JobOut(BaseModel):
    id: int
    state: str = Field(description="queued | running | succeeded | failed | cancelled")
    attempts: int
    max_attempts: int
    next_run_at: datetime
    last_error: str | None
    result: str | None


class BreakerOut(BaseModel):
    state: str = Field(description="closed | open | half_open")
    open: bool
    failures: int
    retry_at: datetime | None


class PublishStatus(BaseModel):
    release_id: int
    configured: bool = Field(description="Notion token and database are set")
    auto_publish: bool
    has_note: bool
    state: str = Field(description="draft | queued | publishing | published | failed")
    notion_url: str | None
    notion_page_id: str | None
    published_at: datetime | None
    published_hash: str | None
    last_error: str | None = Field(description="Notion's message for the last failed attempt")
    disabled_reason: str | None = Field(
        description="why publishing cannot be asked for now (Notion not configured); null if it can"
    )
    job: JobOut | None
    breaker: BreakerOut


class PublishQueued(BaseModel):
    job: JobOut
    status: PublishStatus


def _release(release_id: int) -> Release:
    release = db.session().get(Release, release_id)
    if release is None:
        raise ApiError(404, "not_found", f"no release with id {release_id}")
    return release


def _status(release: Release) -> PublishStatus:
    data: dict[str, Any] = notion_publish.publish_status(db.session(), release)
    return PublishStatus.model_validate(data)


@routes.operation(
    "/releases/<int:release_id>/publish",
    "POST",
    summary="Publish a release's notes to Notion (queues a background job)",
    scope="releases:write",
    response=PublishQueued,
    status=202,
    errors=(409,),
)
def publish_release_notes(release_id: int) -> PublishQueued:
    """Queues the publish job (or moves an already queued one to now) and returns at once;
    poll ``GET`` on the same path for the outcome. 409 ``notion_not_configured`` while the
    service has no Notion token and database (nothing is queued), 409 ``no_notes`` before the
    notes exist."""
    session = db.session()
    release = _release(release_id)
    job = notion_publish.request_publish(
        session, release, actor=current_actor(), reason="requested through the API"
    )
    status = _status(release)
    job_out = JobOut.model_validate(notion_publish.job_status(job))
    return PublishQueued(job=job_out, status=status)


@routes.operation(
    "/releases/<int:release_id>/publish",
    summary="Where publishing a release's notes to Notion stands",
    response=PublishStatus,
)
def release_publish_status(release_id: int) -> PublishStatus:
    return _status(_release(release_id))
