"""Adoption API: heartbeats in, reports out (JSON, or CSV with ``?format=csv`` / ``.csv``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, Literal

from flask import Response, current_app, g, request
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationInfo, field_validator
from sqlmodel import Session

from service import db
from service.adoption import heartbeat_metrics, heartbeats, services
from service.api.errors import ApiError, not_found
from service.api.operations import Routes
from service.csv_export import csv_response
from service.releases.models import App
from version_monitor import reports
from version_monitor.ingest import HeartbeatIn

TAG = "Adoption"
routes = Routes(tag=TAG)


# --- heartbeats -------------------------------------------------------------------------


class HeartbeatBatch(RootModel[HeartbeatIn | list[HeartbeatIn]]):
    """One heartbeat, or a list of 1 to 1,000 of them."""


class RejectedHeartbeat(BaseModel):
    index: int = Field(description="Position of the item in the batch (0 for a single object)")
    field: str | None
    reason: str


class HeartbeatResult(BaseModel):
    accepted: int = Field(description="Valid heartbeats (replays included; they change nothing)")
    rejected: list[RejectedHeartbeat]
    registered_devices: int | None = Field(None, description="Not given when queued (202)")
    version_changes: int | None = Field(None, description="Not given when queued (202)")
    new_device_states: int | None = Field(None, description="Not given when queued (202)")
    stale: int | None = Field(
        None,
        description="Valid but not newer than what the device already reported; not given "
        "when queued (202)",
    )
    queued: int | None = Field(
        None, description="With 202: heartbeats queued, written within the flush interval"
    )


@routes.operation(
    "/heartbeats",
    "POST",
    summary="Report device versions (one heartbeat or a batch of up to 1,000)",
    scope="heartbeats:write",
    documented_body=HeartbeatBatch,  # parsed item by item in the view
    response=HeartbeatResult,
    errors=(400, 413, 415, 422, 429),
)
def adoption_post_heartbeats() -> tuple[dict[str, Any], int] | Response:
    """Each item is checked on its own: valid ones are stored and invalid ones come back in
    ``rejected`` with their index, field and reason (status 207 when some were rejected).
    With a flush interval (``RELGOV_HEARTBEAT_FLUSH_MS``, the production default) a request
    of fewer than 100 heartbeats, all valid, is answered 202 with ``queued``: they are
    written within the interval (the counts of what they changed are not given then).
    When every item is rejected nothing is stored and the answer is 422. A body that is not
    a heartbeat object or a list of them is refused whole with 400; more than 1,000 items
    with 413. Replaying a heartbeat changes nothing. Each token may send a number of
    heartbeats a minute (``RELGOV_HEARTBEAT_RATE_LIMIT``, items of accepted requests); past
    it the request is refused whole with 429 and ``Retry-After`` (seconds)."""
    if not request.is_json:
        raise ApiError(
            415, "unsupported_media_type", "send the body as JSON (Content-Type: application/json)"
        )
    try:
        items = heartbeats.items_of(request.get_data(cache=False))
    except heartbeats.BadBody as exc:
        kind = "too_long" if exc.status == 413 else "malformed"
        fields = [{"field": "body", "message": exc.detail, "type": kind}] if exc.detail else []
        raise ApiError(exc.status, exc.code, exc.message, fields) from None
    session = db.session()
    wanted = {
        item["app"] for item in items if isinstance(item, dict) and isinstance(item.get("app"), str)
    }
    accepted = heartbeats.accept(
        session,
        items,
        apps=services.known_apps.get(session, wanted),
        ids=services.ingest_ids(),
        token_id=g.api_token.id,
        limit=current_app.config["RELGOV_SETTINGS"].heartbeat_rate_limit,
    )
    result = accepted.result
    body = result.as_dict()
    if not result.accepted:
        session.rollback()
        heartbeat_metrics.count_rejections(result.rejected)
        fields = [
            {
                "field": f"[{r.index}].{r.field}" if r.field else f"[{r.index}]",
                "message": r.reason,
                "type": "value_error",
            }
            for r in result.rejected[:50]
        ]
        first = result.rejected[0]
        message = (
            f"no heartbeat was accepted; item {first.index}"
            + (f" ({first.field})" if first.field else "")
            + f": {first.reason}"
        )
        body["error"] = {"code": "validation_error", "message": message, "fields": fields}
        return body, 422
    if accepted.refusal is not None:
        session.rollback()
        heartbeat_metrics.RATE_LIMITED.inc()
        raise ApiError(
            429,
            "rate_limited",
            accepted.refusal.message,
            headers={"Retry-After": str(accepted.refusal.retry_after)},
        )
    session.commit()
    heartbeat_metrics.ACCEPTED.inc(result.accepted)
    if result.rejected:
        heartbeat_metrics.count_rejections(result.rejected)
    return body, 207 if result.rejected else 200


# --- reports ----------------------------------------------------------------------------


MAX_SERIES_DAYS = 1000
# Pages of a report: far beyond any fleet, small enough for every database's OFFSET.
MAX_OFFSET = 10_000_000


class ReportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["json", "csv"] = Field(default="json", description="csv to download")


class SeriesQuery(ReportQuery):
    # ``end`` first: the check of ``start`` reads it.
    end: date | None = Field(default=None, description="Last day (default: today, UTC)")
    start: date | None = Field(default=None, description="First day (default: `days` ago)")
    days: int = Field(
        default=150, ge=1, le=MAX_SERIES_DAYS, description="Length when start is absent"
    )
    step: Literal["auto", "day", "week"] = Field(
        default="auto", description="auto: one point a day up to 180 days, else one a week"
    )

    @field_validator("start")
    @classmethod
    def _within(cls, start: date | None, info: ValidationInfo) -> date | None:
        if start is None:
            return None
        end = info.data.get("end") or services.now_naive().date()
        if start > end:
            raise ValueError("start must not be after end")
        if (end - start).days >= MAX_SERIES_DAYS:
            raise ValueError(f"a series covers at most {MAX_SERIES_DAYS} days: move start later")
        return start


class StragglersQuery(ReportQuery):
    max_behind: int | None = Field(
        default=services.DEFAULT_MAX_BEHIND,
        ge=0,
        le=100,
        description="Also list stores more than this many releases behind",
    )
    limit: int = Field(default=500, ge=1, le=5000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


class OfflineQuery(ReportQuery):
    bucket: Literal["24h", "7d"] | None = Field(
        default=None, description="24h: unseen 24 h to 7 days; 7d: unseen for over 7 days"
    )
    limit: int = Field(default=500, ge=1, le=5000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


@dataclasses.dataclass
class Report:
    data: dict[str, Any] | list[Any]
    # The CSV rows, or what makes them when a CSV is asked for (a year of the daily series
    # is tens of thousands of rows that a JSON answer never reads).
    csv_rows: list[dict[str, Any]] | Callable[[], list[dict[str, Any]]]

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.csv_rows() if callable(self.csv_rows) else self.csv_rows


def app_or_404(session: Session, slug: str) -> App:
    app = services.find_app(session, slug)
    if app is None:
        raise not_found(f"no app {slug!r}", field="app")
    return app


def series_report(session: Session, app: App, query: SeriesQuery, now: datetime) -> Report:
    end = query.end or now.date()
    start = query.start or end - timedelta(days=query.days - 1)
    weekly = query.step == "week" or (query.step == "auto" and (end - start).days >= 180)
    series = reports.adoption_over_time(
        session,
        app=app.slug,
        start=start,
        end=end,
        releases=services.release_infos(session, app),
        step=7 if weekly else 1,
    )
    data = series.as_dict()
    data["step"] = "week" if weekly else "day"
    return Report(data, series.rows)


def census_report(session: Session, app: App, query: ReportQuery, now: datetime) -> Report:
    result = reports.census(session, app=app.slug, now=now, concurrently=True)
    rows: list[dict[str, Any]] = []
    for group, items in (
        ("version", result.by_version),
        ("device_kind", result.by_kind),
        ("region", result.by_region),
    ):
        for item in items:
            rows.append({"group": group, **item})
    return Report(result.as_dict(), rows)


def stragglers_report(session: Session, app: App, query: StragglersQuery, now: datetime) -> Report:
    result = services.stragglers(
        session, app, now=now, max_behind=query.max_behind, limit=query.limit, offset=query.offset
    )
    return Report(result.as_dict(), result.rows())


def offline_report(session: Session, app: App, query: OfflineQuery, now: datetime) -> Report:
    result = reports.offline_devices(
        session, app=app.slug, now=now, bucket=query.bucket, limit=query.limit, offset=query.offset
    )
    return Report(result.as_dict(), result.rows())


def milestones_report(session: Session, app: App, query: ReportQuery, now: datetime) -> Report:
    milestones = reports.time_to_adoption(
        session, app=app.slug, releases=services.release_infos(session, app)
    )
    items = [m.as_dict() for m in milestones]
    return Report({"app": app.slug, "milestones": items}, items)


def stalls_report(session: Session, app: App, query: ReportQuery, now: datetime) -> Report:
    stalls = services.detect_stalls(session, app, now=now)
    rows: list[dict[str, Any]] = []
    for stall in stalls:
        head = {k: v for k, v in stall.as_dict().items() if k != "holding_back"}
        if not stall.holding_back:
            rows.append(head)
        for holder in stall.holding_back:
            rows.append(head | {f"store_{k}": v for k, v in holder.as_dict().items()})
    return Report({"app": app.slug, "stalls": [s.as_dict() for s in stalls]}, rows)


Builder = Callable[[Session, App, Any, datetime], Report]
REPORTS: dict[str, tuple[str, type[ReportQuery], Builder]] = {
    "series": ("Adoption of each version per day, beta / rest / all", SeriesQuery, series_report),
    "census": (
        "Today's devices and stores per version, kind and region",
        ReportQuery,
        census_report,
    ),
    "stragglers": (
        "Stores below the minimum supported version or too many releases behind",
        StragglersQuery,
        stragglers_report,
    ),
    "offline": ("Devices not seen for 24 hours or 7 days", OfflineQuery, offline_report),
    "milestones": ("Days to 50 / 80 / 95 % adoption per release", ReportQuery, milestones_report),
    "stalls": ("Stalled releases and the stores holding them back", ReportQuery, stalls_report),
}


def build_report(
    name: str, slug: str, query: ReportQuery, *, now: datetime | None = None
) -> Report:
    session = db.session()
    app = app_or_404(session, slug)
    _, _, builder = REPORTS[name]
    return builder(session, app, query, now or services.now_naive())


def _register(name: str, summary: str, query_model: type[ReportQuery]) -> None:
    def view(app: str, query: ReportQuery) -> Any:
        report = build_report(name, app, query)
        if query.format == "csv":
            return csv_response(report.rows, f"{app}-{name}-{date.today().isoformat()}.csv")
        return report.data

    def csv_view(app: str, query: ReportQuery) -> Any:
        report = build_report(name, app, query)
        return csv_response(report.rows, f"{app}-{name}-{date.today().isoformat()}.csv")

    view.__name__ = f"adoption_{name}"
    view.__doc__ = f"{summary}. Add `format=csv` (or use the `.csv` path) for a CSV download."
    csv_view.__name__ = f"adoption_{name}_csv"
    csv_view.__doc__ = f"{summary}, as CSV."
    rule = f"/apps/<app>/adoption/{name}"
    routes.operation(rule, summary=summary, query=query_model)(view)
    routes.operation(
        rule + ".csv",
        summary=summary + " (CSV)",
        query=query_model,
        response="text/csv",
    )(csv_view)


for _name, (_summary, _query, _) in REPORTS.items():
    _register(_name, _summary, _query)
