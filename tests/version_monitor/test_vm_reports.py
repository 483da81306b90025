"""Rollups and reports on a small hand-built fleet whose answers are worked out by hand.

NOW is 2024-07-10 12:00. Releases: 3.10.0 and 3.11.0 went to every store in June, 3.12.0
entered beta on 07-03 and went to every store on 07-05, 3.13.0 entered beta on 07-09.

| device | store (cohort, region) | kind  | versions (from June, then July day/hour) | last seen |
|--------|------------------------|-------|------------------------------------------|-----------|
| d1     | B1 (beta, kanto)       | pos   | 3.10.0, 3.12.0 3rd 10h, 3.13.0 9th 12h   | 1 h ago   |
| d2     | B1                     | handy | 3.10.0, 3.12.0 4th 10h                   | 1 h ago   |
| d3     | B2 (beta, kansai)      | kds   | 3.10.0, 3.12.0 3rd 20h, 3.13.0 9th 20h   | 1 h ago   |
| d4     | B2                     | pos   | 3.10.0                                   | 8th 9h    |
| d5     | S1 (stable, kanto)     | pos   | 3.10.0, 3.12.0 5th 10h                   | 1 h ago   |
| d6     | S1                     | pos   | 3.10.0, 3.12.0 6th 10h                   | 1 h ago   |
| d7     | S2 (stable, kansai)    | handy | 3.10.0                                   | 1 h ago   |
| d8     | S3 (stable, kyushu)    | pos   | 3.9.0                                    | 1 h ago   |
| d9     | S3                     | pos   | 3.10.0                                   | June 30th |
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from tests.version_monitor.vm_fleet import NOW, Fleet
from version_monitor.adoption import ReleaseInfo
from version_monitor.models import AdoptionDaily, AdoptionDayTotal
from version_monitor.reports import (
    adoption_over_time,
    beta_adoption,
    census,
    detect_stalls,
    offline_devices,
    stragglers,
    time_to_adoption,
)
from version_monitor.rollup import prune_rollups, rollup_day, rollup_range

JUNE = datetime(2024, 6, 1)
RECENT = NOW - timedelta(hours=1)


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2024, 7, day, hour)


RELEASES = [
    ReleaseInfo("3.10.0", beta_at=datetime(2024, 6, 12), rolled_out_at=datetime(2024, 6, 14)),
    ReleaseInfo("3.11.0", beta_at=datetime(2024, 6, 26), rolled_out_at=datetime(2024, 6, 28)),
    ReleaseInfo("3.12.0", beta_at=at(3, 9), rolled_out_at=at(5, 9)),
    ReleaseInfo("3.13.0", beta_at=at(9, 10)),
]


@pytest.fixture
def built(session: Session, fleet: Fleet) -> Fleet:
    b1 = fleet.store("B1", in_beta=True, region="kanto")
    b2 = fleet.store("B2", in_beta=True, region="kansai")
    s1 = fleet.store("S1", region="kanto")
    s2 = fleet.store("S2", region="kansai")
    s3 = fleet.store("S3", region="kyushu")
    old = (JUNE, "3.10.0")
    rows = [
        ("d1", b1, "pos", [old, (at(3, 10), "3.12.0"), (at(9, 12), "3.13.0")], RECENT),
        ("d2", b1, "handy", [old, (at(4, 10), "3.12.0")], RECENT),
        ("d3", b2, "kds", [old, (at(3, 20), "3.12.0"), (at(9, 20), "3.13.0")], RECENT),
        ("d4", b2, "pos", [old], at(8, 9)),
        ("d5", s1, "pos", [old, (at(5, 10), "3.12.0")], RECENT),
        ("d6", s1, "pos", [old, (at(6, 10), "3.12.0")], RECENT),
        ("d7", s2, "handy", [old], RECENT),
        ("d8", s3, "pos", [(JUNE, "3.9.0")], RECENT),
        ("d9", s3, "pos", [old], datetime(2024, 6, 30)),
    ]
    for device_id, store, kind, changes, last_seen in rows:
        fleet.history(fleet.device(device_id, store, kind=kind), changes, last_seen=last_seen)
    return fleet


def rollup_rows(session: Session, day: date) -> set[tuple[str, str, str, int, int]]:
    rows = session.exec(select(AdoptionDaily).where(AdoptionDaily.day == day)).all()
    return {(r.channel, r.version, r.device_kind, r.devices, r.stores) for r in rows}


def test_rollup_of_a_past_day_uses_the_version_at_its_end(session: Session, built: Fleet) -> None:
    assert rollup_day(session, day=date(2024, 7, 3), now=NOW) == 7
    assert rollup_rows(session, date(2024, 7, 3)) == {
        ("beta", "3.12.0", "pos", 1, 1),
        ("beta", "3.12.0", "kds", 1, 1),
        ("beta", "3.10.0", "handy", 1, 1),
        ("beta", "3.10.0", "pos", 1, 1),
        ("stable", "3.10.0", "pos", 2, 1),
        ("stable", "3.10.0", "handy", 1, 1),
        ("stable", "3.9.0", "pos", 1, 1),
    }


def test_rollup_of_today_counts_up_to_now_and_leaves_offline_out(
    session: Session, built: Fleet
) -> None:
    rollup_day(session, day=NOW.date(), now=NOW)
    assert rollup_rows(session, NOW.date()) == {
        ("beta", "3.13.0", "pos", 1, 1),
        ("beta", "3.13.0", "kds", 1, 1),
        ("beta", "3.12.0", "handy", 1, 1),
        ("stable", "3.12.0", "pos", 2, 1),
        ("stable", "3.10.0", "handy", 1, 1),
        ("stable", "3.9.0", "pos", 1, 1),
    }
    assert rollup_day(session, day=NOW.date() + timedelta(days=1), now=NOW) == 0


def test_rollup_is_idempotent_and_pruned(session: Session, built: Fleet) -> None:
    first = rollup_range(session, start=date(2024, 7, 1), end=date(2024, 7, 10), now=NOW)
    snapshot = {d: rollup_rows(session, date(2024, 7, d)) for d in range(1, 11)}
    again = rollup_range(session, start=date(2024, 7, 1), end=date(2024, 7, 10), now=NOW)
    assert first == again
    assert {d: rollup_rows(session, date(2024, 7, d)) for d in range(1, 11)} == snapshot
    removed = sum(len(snapshot[d]) for d in range(1, 5))
    assert prune_rollups(session, keep_days=5, now=NOW) == removed
    days = set(session.exec(select(col(AdoptionDaily.day))).all())
    assert min(days) == date(2024, 7, 5)
    with pytest.raises(ValueError):
        prune_rollups(session, keep_days=0, now=NOW)


def test_census_counts_online_devices_only(session: Session, built: Fleet) -> None:
    report = census(session, app="pos", now=NOW)
    assert (report.devices, report.stores, report.offline, report.gone) == (7, 5, 1, 1)
    assert [(v["version"], v["devices"], v["stores"]) for v in report.by_version] == [
        ("3.13.0", 2, 2),
        ("3.12.0", 3, 2),
        ("3.10.0", 1, 1),
        ("3.9.0", 1, 1),
    ]
    assert report.by_version[1]["share"] == pytest.approx(3 / 7)
    assert [(k["device_kind"], k["version"], k["devices"]) for k in report.by_kind] == [
        ("handy", "3.12.0", 1),
        ("handy", "3.10.0", 1),
        ("kds", "3.13.0", 1),
        ("pos", "3.13.0", 1),
        ("pos", "3.12.0", 2),
        ("pos", "3.9.0", 1),
    ]
    assert report.by_kind[0]["share"] == pytest.approx(0.5)
    assert [(r["region"], r["version"], r["devices"], r["stores"]) for r in report.by_region] == [
        ("kansai", "3.13.0", 1, 1),
        ("kansai", "3.10.0", 1, 1),
        ("kanto", "3.13.0", 1, 1),
        ("kanto", "3.12.0", 3, 2),
        ("kyushu", "3.9.0", 1, 1),
    ]
    assert report.as_dict()["at"] == NOW.isoformat()


def test_census_concurrently_gives_the_same_report(session: Session, built: Fleet) -> None:
    # On PostgreSQL the offline and per-kind counts then run on a second connection, which
    # sees committed data only (pages and the API read in transactions that wrote nothing).
    session.commit()
    alone = census(session, app="pos", now=NOW)
    together = census(session, app="pos", now=NOW, concurrently=True)
    assert together.as_dict() == alone.as_dict()
    assert (together.devices, together.offline, together.gone) == (7, 1, 1)
    assert sum(k["devices"] for k in together.by_kind) == 7


def test_census_of_an_app_without_devices(session: Session, built: Fleet) -> None:
    report = census(session, app="kds", now=NOW)
    assert (report.devices, report.by_version, report.offline) == (0, [], 0)


def test_beta_adoption(session: Session, built: Fleet) -> None:
    # d4 is offline, so beta counts d1, d2, d3.
    assert beta_adoption(session, app="pos", version="3.13.0", now=NOW) == pytest.approx(2 / 3)
    assert beta_adoption(session, app="pos", version="3.12", now=NOW) == 1.0
    assert beta_adoption(session, app="pos", version="3.14.0", now=NOW) == 0.0
    assert beta_adoption(session, app="kds", version="3.13.0", now=NOW) is None
    # Two days later nobody has reported: not available, never a pass.
    later = NOW + timedelta(days=2)
    assert beta_adoption(session, app="pos", version="3.13.0", now=later) is None


def test_stragglers(session: Session, built: Fleet) -> None:
    report = stragglers(
        session,
        app="pos",
        releases=RELEASES,
        now=NOW,
        minimum_supported="3.10.0",
        max_behind=1,
    )
    assert report.behind_threshold == "3.11.0"
    assert report.total_stores == 3
    assert [
        (s.store_id, s.devices, s.devices_behind, s.devices_below_minimum, s.oldest_version)
        for s in report.stores
    ] == [("S3", 1, 1, 1, "3.9.0"), ("B2", 2, 1, 0, "3.10.0"), ("S2", 1, 1, 0, "3.10.0")]
    assert report.stores[0].reasons == ("below_minimum", "behind")
    assert report.stores[1].reasons == ("behind",)
    assert (report.stores[1].name, report.stores[1].region) == ("Store B2", "kansai")
    assert report.stores[1].last_seen == RECENT
    assert report.rows()[0]["reasons"] == "below_minimum behind"


def test_stragglers_by_minimum_only_and_nothing_asked(session: Session, built: Fleet) -> None:
    report = stragglers(session, app="pos", releases=RELEASES, now=NOW, minimum_supported="3.10")
    assert [(s.store_id, s.reasons) for s in report.stores] == [("S3", ("below_minimum",))]
    assert stragglers(session, app="pos", releases=RELEASES, now=NOW).stores == []
    # Behind by more releases than have shipped: nobody.
    many = stragglers(session, app="pos", releases=RELEASES, now=NOW, max_behind=5)
    assert (many.behind_threshold, many.stores) == (None, [])


def test_offline_devices(session: Session, built: Fleet) -> None:
    report = offline_devices(session, app="pos", now=NOW)
    assert (report.offline_24h, report.offline_7d) == (1, 1)
    assert [(d.device_id, d.store_id, d.bucket, d.version) for d in report.devices] == [
        ("d9", "S3", "7d", "3.10.0"),
        ("d4", "B2", "24h", "3.10.0"),
    ]
    only_week = offline_devices(session, app="pos", now=NOW, bucket="7d")
    assert [d.device_id for d in only_week.devices] == ["d9"]
    with pytest.raises(ValueError):
        offline_devices(session, app="pos", now=NOW, bucket="1h")


def test_adoption_over_time(session: Session, built: Fleet) -> None:
    rollup_range(session, start=date(2024, 7, 1), end=date(2024, 7, 10), now=NOW)
    series = adoption_over_time(
        session, app="pos", start=date(2024, 7, 3), end=date(2024, 7, 4), releases=RELEASES
    )
    assert series.versions == ["3.9.0", "3.10.0", "3.12.0"]
    beta, stable, everyone = (series.channels[c] for c in ("beta", "stable", "all"))
    assert beta.totals == [4, 4]
    assert beta.shares["3.12.0"] == [0.5, 0.75]
    assert stable.shares["3.10.0"] == [0.75, 0.75]
    assert stable.shares["3.12.0"] == [0.0, 0.0]
    assert everyone.devices["3.10.0"] == [5, 4]
    assert [r.version for r in series.releases] == ["3.12.0"]
    assert series.as_dict()["days"] == ["2024-07-03", "2024-07-04"]
    assert {"day": "2024-07-04", "channel": "beta", "version": "3.12.0", "devices": 3,
            "share": 0.75} in series.rows()  # fmt: skip


def test_time_to_adoption(session: Session, built: Fleet) -> None:
    rollup_range(session, start=date(2024, 7, 1), end=date(2024, 7, 10), now=NOW)
    milestones = time_to_adoption(session, app="pos", releases=RELEASES[1:])
    got = {(m.version, m.channel, m.threshold): (m.reached_on, m.days) for m in milestones}
    assert got[("3.12.0", "beta", 0.5)] == (date(2024, 7, 3), 0)
    assert got[("3.12.0", "beta", 0.8)] == (date(2024, 7, 9), 6)  # d4 went offline
    assert got[("3.12.0", "beta", 0.95)] == (date(2024, 7, 9), 6)
    assert got[("3.12.0", "all", 0.5)] == (date(2024, 7, 5), 0)
    assert got[("3.12.0", "all", 0.8)] == (None, None)
    assert got[("3.13.0", "beta", 0.5)] == (date(2024, 7, 9), 0)
    assert got[("3.13.0", "beta", 0.8)] == (None, None)
    assert got[("3.13.0", "all", 0.5)] == (None, None)  # 2 of 7 overall
    assert [m.started_on for m in milestones if m.version == "3.13.0"] == [date(2024, 7, 9)] * 6
    assert got[("3.11.0", "beta", 0.5)] == (date(2024, 7, 3), 7)
    assert milestones[0].as_dict()["started_on"] == "2024-06-26"


def test_time_to_adoption_is_recomputed_when_the_rollups_change(
    session: Session, built: Fleet
) -> None:
    def reached() -> dict[tuple[str, str, float], date | None]:
        milestones = time_to_adoption(session, app="pos", releases=RELEASES[1:])
        return {(m.version, m.channel, m.threshold): m.reached_on for m in milestones}

    assert set(reached().values()) == {None}  # no rollups yet
    rollup_range(session, start=date(2024, 7, 1), end=date(2024, 7, 8), now=NOW)
    assert reached()[("3.12.0", "beta", 0.8)] is None
    assert reached() == reached()  # the kept result, same as computed
    rollup_range(session, start=date(2024, 7, 9), end=date(2024, 7, 10), now=NOW)
    assert reached()[("3.12.0", "beta", 0.8)] == date(2024, 7, 9)
    prune_rollups(session, keep_days=1, now=NOW)
    assert reached()[("3.12.0", "beta", 0.5)] == date(2024, 7, 9)  # the first day left


def test_stalls(session: Session, built: Fleet) -> None:
    rollup_range(session, start=date(2024, 7, 1), end=date(2024, 7, 10), now=NOW)
    stalls = detect_stalls(
        session,
        app="pos",
        releases=RELEASES[2:],
        now=NOW,
        beta_target=0.9,
        beta_hours=24,
        min_gain=0.1,
    )
    assert [(s.version, s.kind) for s in stalls] == [
        ("3.12.0", "not_rising"),
        ("3.13.0", "beta_below_target"),
    ]
    rising, beta = stalls
    assert rising.share == pytest.approx(5 / 7)
    assert [(h.store_id, h.devices_behind, h.oldest_version) for h in rising.holding_back] == [
        ("S3", 1, "3.9.0"),
        ("S2", 1, "3.10.0"),
    ]
    assert beta.share == pytest.approx(2 / 3)
    assert [(h.store_id, h.devices, h.devices_behind) for h in beta.holding_back] == [("B1", 2, 1)]
    assert beta.stores_holding_back == 1
    assert beta.as_dict()["since"] == "2024-07-09T10:00:00"


def test_no_stall_when_on_track(session: Session, built: Fleet) -> None:
    rollup_range(session, start=date(2024, 7, 1), end=date(2024, 7, 10), now=NOW)
    # Too early for the beta rule, and 3.12.0 gained more than 1 point in the window.
    assert (
        detect_stalls(
            session, app="pos", releases=RELEASES[2:], now=NOW, beta_target=0.9, beta_hours=48
        )
        == []
    )
    assert (
        detect_stalls(
            session, app="pos", releases=RELEASES[2:], now=NOW, beta_target=0.5, beta_hours=24
        )
        == []
    )


def day_totals(session: Session) -> dict[tuple[date, str, str], tuple[str, int]]:
    rows = session.exec(select(AdoptionDayTotal)).all()
    return {(r.day, r.version_key, r.channel): (r.version, r.devices) for r in rows}


def summed_rollups(session: Session) -> dict[tuple[date, str, str], tuple[str, int]]:
    sums: dict[tuple[date, str, str], tuple[str, int]] = {}
    for r in session.exec(select(AdoptionDaily)).all():
        key = (r.day, r.version_key, r.channel)
        version, devices = sums.get(key, (r.version, 0))
        sums[key] = (min(version, r.version), devices + r.devices)
    return sums


def test_day_totals_follow_the_rollups_and_their_pruning(session: Session, built: Fleet) -> None:
    rollup_range(session, start=date(2024, 7, 1), end=date(2024, 7, 10), now=NOW)
    assert day_totals(session) == summed_rollups(session) != {}
    rollup_day(session, day=date(2024, 7, 3), now=NOW)  # recomputed in place
    assert day_totals(session) == summed_rollups(session)
    prune_rollups(session, keep_days=5, now=NOW)
    assert day_totals(session) == summed_rollups(session)
    assert min(day for day, _, _ in day_totals(session)) == date(2024, 7, 5)
