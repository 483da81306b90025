"""The series of :func:`adoption_over_time` (one pass over the driver's rows) against the
reference: the series builder as it was (``reference_series``) over the day totals read
through the ORM, as the reports computed it before, on a simulated fleet with a release a
week up to today (still open)."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlmodel import Session, col, select

from tests.version_monitor.reference_series import reference_dict, reference_series
from tests.version_monitor.vm_fleet import NOW
from version_monitor.adoption import AdoptionSeries, DailyCount, ReleaseInfo
from version_monitor.models import AdoptionDayTotal, DeviceState
from version_monitor.reports import adoption_over_time, time_to_adoption
from version_monitor.rollup import rollup_day
from version_monitor.simulate import build_fleet, simulate_adoption, weekly_releases

START = NOW - timedelta(days=70)
TODAY = NOW.date()


def reference(
    session: Session,
    *,
    app: str,
    start: date,
    end: date,
    releases: list[ReleaseInfo],
    step: int = 1,
) -> AdoptionSeries:
    rows = session.exec(
        select(AdoptionDayTotal)
        .where(AdoptionDayTotal.app == app, AdoptionDayTotal.day >= start)
        .where(AdoptionDayTotal.day <= end)
        .order_by(col(AdoptionDayTotal.day), col(AdoptionDayTotal.version_key))
        .order_by(col(AdoptionDayTotal.channel))
    ).all()
    counts = [DailyCount(r.day, r.version, r.version_key, r.channel, r.devices) for r in rows]
    days = sorted(end - timedelta(days=n) for n in range(0, (end - start).days + 1, step))
    shown = [
        r
        for r in releases
        if any(start <= m.date() <= end for m in (r.beta_at, r.rolled_out_at) if m)
    ]
    return reference_series(app, counts, days=days, releases=shown)


def assert_same(new: AdoptionSeries, old: AdoptionSeries) -> None:
    assert new.days == old.days
    assert new.versions == old.versions
    assert new.as_dict() == reference_dict(old)
    # The JSON text too (a -0.0 or a float off by one bit would show here), and the CSV rows.
    assert json.dumps(new.as_dict()) == json.dumps(reference_dict(old))
    assert new.rows() == old.rows()


@pytest.fixture
def releases(session: Session) -> list[ReleaseInfo]:
    build_fleet(session, stores=60, devices=400, beta_share=0.2, now=NOW, seed=3)
    releases = weekly_releases(first=START.date(), weeks=11, major=4, first_minor=0, now=NOW)
    simulate_adoption(session, app="pos", releases=releases, start=START, now=NOW, seed=5)
    session.commit()
    return releases


@pytest.mark.parametrize(
    ("start", "end", "step"),
    [
        (TODAY - timedelta(days=89), TODAY, 1),  # starts before the first rollup
        (TODAY - timedelta(days=29), TODAY, 1),
        (TODAY - timedelta(days=89), TODAY, 7),
        (TODAY - timedelta(days=40), TODAY - timedelta(days=10), 1),
        (TODAY - timedelta(days=40), TODAY - timedelta(days=10), 3),
        (TODAY, TODAY, 1),
        (TODAY + timedelta(days=1), TODAY + timedelta(days=5), 1),  # nothing yet
    ],
)
def test_series_matches_the_reference(
    session: Session, releases: list[ReleaseInfo], start: date, end: date, step: int
) -> None:
    new = adoption_over_time(session, app="pos", start=start, end=end, releases=releases, step=step)
    assert_same(
        new, reference(session, app="pos", start=start, end=end, releases=releases, step=step)
    )
    if start <= TODAY - timedelta(days=20) and end >= TODAY - timedelta(days=20):
        assert len(new.versions) > 3 and any(new.channels["beta"].totals)


def test_series_follows_todays_rollup(session: Session, releases: list[ReleaseInfo]) -> None:
    start = TODAY - timedelta(days=6)
    before = adoption_over_time(session, app="pos", start=start, end=TODAY, releases=releases)
    # Today is still open: five devices counted so far turn out not seen since yesterday,
    # and the worker rolls today up again.
    seen_today = session.exec(
        select(DeviceState)
        .where(DeviceState.app == "pos", DeviceState.last_seen >= NOW.replace(hour=0))
        .order_by(col(DeviceState.id))
        .limit(5)
    ).all()
    assert len(seen_today) == 5
    for state in seen_today:
        state.last_seen = NOW - timedelta(days=1, hours=1)
        session.add(state)
    session.flush()
    rollup_day(session, day=TODAY, now=NOW)
    after = adoption_over_time(session, app="pos", start=start, end=TODAY, releases=releases)
    assert_same(after, reference(session, app="pos", start=start, end=TODAY, releases=releases))
    assert after.channels["all"].totals[:-1] == before.channels["all"].totals[:-1]
    assert after.channels["all"].totals[-1] == before.channels["all"].totals[-1] - 5


def test_series_of_an_app_without_rollups(session: Session, releases: list[ReleaseInfo]) -> None:
    start = TODAY - timedelta(days=9)
    new = adoption_over_time(session, app="kds", start=start, end=TODAY)
    assert_same(new, reference(session, app="kds", start=start, end=TODAY, releases=[]))
    assert new.versions == [] and new.channels["all"].totals == [0] * 10


def test_time_to_adoption_reads_the_same_day_totals(
    session: Session, releases: list[ReleaseInfo]
) -> None:
    from version_monitor.adoption import time_to_thresholds

    rows = session.exec(
        select(AdoptionDayTotal)
        .where(AdoptionDayTotal.app == "pos")
        .order_by(col(AdoptionDayTotal.day), col(AdoptionDayTotal.version_key))
    ).all()
    counts = [DailyCount(r.day, r.version, r.version_key, r.channel, r.devices) for r in rows]
    got = time_to_adoption(session, app="pos", releases=releases)
    assert got == time_to_thresholds(counts, releases)
    assert any(m.days is not None for m in got)
