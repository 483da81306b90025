from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, select

from tests.version_monitor.vm_fleet import NOW
from version_monitor.models import AdoptionDaily, AdoptionDayTotal, DeviceState, VersionChange
from version_monitor.reports import beta_adoption, census, offline_devices
from version_monitor.rollup import rollup_range
from version_monitor.simulate import build_fleet, simulate_adoption, weekly_releases

START = NOW - timedelta(days=60)


def rollups(session: Session) -> list[tuple[date, str, str, str, int, int]]:
    rows = session.exec(select(AdoptionDaily)).all()
    return sorted((r.day, r.version, r.channel, r.device_kind, r.devices, r.stores) for r in rows)


def totals(session: Session) -> list[tuple[date, str, str, str, int]]:
    rows = session.exec(select(AdoptionDayTotal)).all()
    return sorted((r.day, r.version_key, r.channel, r.version, r.devices) for r in rows)


def simulate(session: Session, seed: int = 7) -> None:
    releases = weekly_releases(first=START.date(), weeks=9, major=3, first_minor=10, now=NOW)
    simulate_adoption(session, app="pos", releases=releases, start=START, now=NOW, seed=seed)


def test_weekly_releases_stop_at_now() -> None:
    releases = weekly_releases(first=date(2024, 7, 1), weeks=4, now=datetime(2024, 7, 16, 10))
    assert [r.version for r in releases] == ["3.0.0", "3.1.0", "3.2.0"]
    assert releases[1].rolled_out_at == datetime(2024, 7, 10, 9)
    assert releases[2].rolled_out_at is None  # still in beta


def test_simulated_rollups_match_the_rollup_job(session: Session) -> None:
    build_fleet(session, stores=40, devices=200, beta_share=0.2, now=NOW, seed=1)
    simulate(session)
    simulated = rollups(session)
    assert simulated
    simulated_totals = totals(session)
    rollup_range(session, start=START.date(), end=NOW.date(), now=NOW)
    assert rollups(session) == simulated
    assert totals(session) == simulated_totals


def test_simulation_is_deterministic_and_realistic(session: Session) -> None:
    build_fleet(session, stores=40, devices=200, beta_share=0.2, now=NOW, seed=1)
    simulate(session)
    first = rollups(session)
    changes = session.exec(select(func.count()).select_from(VersionChange)).one()
    simulate(session)  # replaces the app's data
    assert rollups(session) == first
    assert session.exec(select(func.count()).select_from(VersionChange)).one() == changes
    assert session.exec(select(func.count()).select_from(DeviceState)).one() == 200

    report = census(session, app="pos", now=NOW)
    assert report.by_version[0]["version"] == "3.18.0"  # newest first
    assert offline_devices(session, app="pos", now=NOW).offline_24h >= 0
    share = beta_adoption(session, app="pos", version="3.17.0", now=NOW)
    assert share is not None and share > 0.5
