"""The adoption pages: one per app, with the chart, census, stragglers, offline devices,
time to 50/80/95 % and stalls."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
from sqlmodel import Session
from werkzeug.wrappers import Response

import utc
from service import db
from service.adoption import services
from service.auth import login_required
from service.releases.models import App, Release
from version_monitor import reports

bp = Blueprint("adoption", __name__, url_prefix="/adoption")

PERIODS = (30, 90, 150, 365)
CENSUS_COLUMNS = 5  # newest versions shown as columns; the rest are summed as "older"
STRAGGLERS_SHOWN = 100
OFFLINE_SHOWN = 50


@bp.get("/")
@login_required
def index() -> str | Response:
    """The first app's page (apps in slug order), or a note that there are none."""
    apps = services.list_apps(db.session())
    if apps:
        return redirect(url_for("adoption.app_page", slug=apps[0].slug))
    return render_template("adoption/none.html")


def _pivot(rows: list[dict[str, Any]], group: str, versions: list[str]) -> dict[str, Any]:
    """Long rows (group, version, devices) as a table: one row per group, one column per
    shown version and "older"."""
    shown = versions[:CENSUS_COLUMNS]
    table: dict[str, dict[str, int]] = {}
    for row in rows:
        cells = table.setdefault(row[group], {"total": 0})
        column = row["version"] if row["version"] in shown else "older"
        cells[column] = cells.get(column, 0) + row["devices"]
        cells["total"] += row["devices"]
    columns = [*shown, "older"] if len(versions) > len(shown) else shown
    return {"columns": columns, "rows": sorted(table.items())}


def _milestone_table(milestones: list[Any]) -> list[dict[str, Any]]:
    """One row per release: days to each threshold in beta and overall."""
    table: dict[str, dict[str, Any]] = {}
    for m in milestones:
        row = table.setdefault(m.version, {"version": m.version})
        row[f"{m.channel}_start"] = m.started_on
        row[f"{m.channel}_{round(m.threshold * 100)}"] = m.days

    def started(row: dict[str, Any]) -> date:
        return row.get("beta_start") or row.get("all_start") or date.min

    return sorted(table.values(), key=started, reverse=True)


@bp.get("/<slug>")
@login_required
def app_page(slug: str) -> str:
    session = db.session()
    apps = services.list_apps(session)
    app: App | None = next((a for a in apps if a.slug == slug), None)
    if app is None:
        abort(404)
    try:
        days = int(request.args.get("days", 150))
    except ValueError:
        days = 150
    if days not in PERIODS:
        days = 150
    now = services.now_naive()
    end = now.date()
    start = end - timedelta(days=days - 1)
    infos = services.release_infos(session, app)
    series = reports.adoption_over_time(
        session, app=app.slug, start=start, end=end, releases=infos, step=7 if days >= 180 else 1
    )
    census = reports.census(session, app=app.slug, now=now, concurrently=True)
    versions = [row["version"] for row in census.by_version]
    stragglers = services.stragglers(session, app, now=now, limit=STRAGGLERS_SHOWN)
    offline = reports.offline_devices(session, app=app.slug, now=now, limit=OFFLINE_SHOWN)
    milestones = reports.time_to_adoption(session, app=app.slug, releases=infos)
    stalls = services.detect_stalls(session, app, now=now)
    chart = _trim_leading_empty_days(series.as_dict())
    chart["releases"] = [
        {"version": r.version, "beta_at": _day(r.beta_at), "rolled_out_at": _day(r.rolled_out_at)}
        for r in series.releases
    ]
    return render_template(
        "adoption/app.html",
        app=app,
        apps=apps,
        days=days,
        periods=PERIODS,
        now=utc.aware(now),
        chart=chart,
        weekly=days >= 180,
        census=census,
        by_kind=_pivot(census.by_kind, "device_kind", versions),
        by_region=_pivot(census.by_region, "region", versions),
        stragglers=stragglers,
        offline=offline,
        milestones=_milestone_table(milestones),
        stalls=stalls,
        thresholds=(50, 80, 95),
    )


def _trim_leading_empty_days(chart: dict[str, Any]) -> dict[str, Any]:
    """Start the chart at the first day with data (a young app has no long empty stretch)."""
    totals = chart["channels"]["all"]["totals"]
    first = next((i for i, total in enumerate(totals) if total), len(totals))
    if first == 0:
        return chart
    chart["days"] = chart["days"][first:]
    for series in chart["channels"].values():
        series["totals"] = series["totals"][first:]
        for name in ("devices", "shares"):
            series[name] = {v: line[first:] for v, line in series[name].items()}
    return chart


def _day(moment: datetime | None) -> str | None:
    return moment.date().isoformat() if moment else None


def adoption_panel(session: Session, release: Release) -> dict[str, Any]:
    """The release page's adoption panel (``adoption/_release_adoption.html``)."""
    return services.release_adoption(session, release)
