"""``relgov demo``: months of adoption history for every app, so the charts are alive.

Runs after the fleet seeder (stores and devices) and the releases seeder (apps and their
releases). Each app's shipped releases give the timeline; before the oldest one, earlier
weekly releases are implied (one minor version a week back) so the history covers about
five months. ``simulate_adoption`` replaces the app's adoption data, so seeding twice gives
the same picture.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy import func, select
from sqlmodel import Session

from service.adoption import services
from service.releases.models import App
from version_monitor.adoption import ReleaseInfo
from version_monitor.models import store_table
from version_monitor.simulate import build_fleet, simulate_adoption
from versioning import InvalidVersion, parse_version

HISTORY_DAYS = 150
DEMO_STORES, DEMO_DEVICES = 300, 1000


def _earlier_weeklies(first: ReleaseInfo, *, start: datetime) -> list[ReleaseInfo]:
    """Weekly releases before ``first`` back to ``start``: 3.12.0 → 3.11.0, 3.10.0, …"""
    try:
        version = parse_version(first.version)
    except InvalidVersion:
        return []
    base = list(version.base)
    # The release tuple drops trailing zeros ("3.12.0" → (3, 12)); keep the original width.
    width = len(first.version.split("+")[0].split("-")[0].split("."))
    base += [0] * (width - len(base))
    anchor = first.beta_at or first.rolled_out_at
    if len(base) < 2 or anchor is None:
        return []
    out = []
    week = 1
    while base[1] - week >= 0:
        beta_at = datetime.combine((anchor - timedelta(weeks=week)).date(), time(9))
        if beta_at < start:
            break
        parts = [base[0], base[1] - week, *([0] * (len(base) - 2))]
        out.append(
            ReleaseInfo(
                ".".join(str(p) for p in parts), beta_at, rolled_out_at=beta_at + timedelta(days=2)
            )
        )
        week += 1
    return out


def timeline(session: Session, app: App, *, start: datetime) -> list[ReleaseInfo]:
    """The app's shipped releases, preceded by implied weekly ones back to ``start``."""
    infos = sorted(
        (r for r in services.release_infos(session, app) if r.beta_at or r.rolled_out_at),
        key=lambda r: r.key,
    )
    infos = [
        r if r.beta_at else ReleaseInfo(r.version, r.rolled_out_at, r.rolled_out_at) for r in infos
    ]
    if not infos:
        return []
    return sorted([*_earlier_weeklies(infos[0], start=start), *infos], key=lambda r: r.key)


def seed(session: Session) -> list[str]:
    now = services.now_naive()
    start = now - timedelta(days=HISTORY_DAYS)
    lines = ["adoption:"]
    stores = session.execute(select(func.count()).select_from(store_table)).scalar_one()
    if not stores:
        build_fleet(session, stores=DEMO_STORES, devices=DEMO_DEVICES, now=now, prefix="D")
        lines.append(f"  no fleet yet: made {DEMO_STORES} stores, {DEMO_DEVICES} devices")
    apps = services.list_apps(session)
    if not apps:
        return [*lines, "  no apps yet: nothing to simulate"]
    for index, app in enumerate(apps):
        releases = timeline(session, app, start=start)
        if not releases:
            lines.append(f"  {app.slug}: no release has shipped; no history")
            continue
        result = simulate_adoption(
            session, app=app.slug, releases=releases, start=start, now=now, seed=index + 1
        )
        lines.append(
            f"  {app.slug}: {HISTORY_DAYS} days over {result.devices} devices, "
            f"{len(releases)} releases, {result.rollup_rows} rollup rows"
        )
    return lines
