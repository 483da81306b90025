from datetime import UTC, datetime, timedelta

import pytest

from beta.cohort import in_stage, store_bucket
from beta.errors import InvalidInput
from beta.rollout import (
    AppPolicy,
    AppReleases,
    FreezePeriod,
    ReleaseOffer,
    StoreContext,
    check_stages,
    decide_update,
    next_install_window,
    next_stage,
    stage_coverage,
)
from versioning import InvalidVersion

NOW = datetime(2025, 6, 2, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo, 20:00 the day before in LA

# Rollout buckets (salt "rollout"): A → 496 (in the 10 % stage), 12345 → 1210 (50 % only),
# S001 → 5584 (not before 100 %).
BETA = StoreContext("B1", in_beta=True)
EARLY = StoreContext("A")
MIDDLE = StoreContext("12345")
LATE = StoreContext("S001")


def test_store_fixtures_sit_where_the_tables_assume() -> None:
    assert in_stage("A", 10) and not in_stage("12345", 10)
    assert in_stage("12345", 50) and not in_stage("S001", 50)


def app(*releases: ReleaseOffer, min_supported: str | None = None) -> AppReleases:
    return AppReleases(
        app="pos",
        releases=releases,
        policy=AppPolicy(min_supported_version=min_supported, stages=(10, 50, 100)),
    )


WEEK = app(
    ReleaseOffer("3.11.0", "released"),
    ReleaseOffer("3.12.0", "released"),
    ReleaseOffer("3.13.0", "rolling_out", stage_percent=10),
    ReleaseOffer("3.14.0-beta.1", "beta"),
)


@pytest.mark.parametrize(
    ("store", "current", "target", "reason", "channel", "action"),
    [
        (BETA, "3.12.0", "3.14.0-beta.1", "cohort", "beta", "install"),
        (BETA, "3.14.0-beta.1", "3.14.0-beta.1", "cohort", "beta", "none"),
        (EARLY, "3.12.0", "3.13.0", "stage", "stable", "install"),
        (EARLY, "3.11.0", "3.13.0", "stage", "stable", "install"),
        (MIDDLE, "3.12.0", "3.12.0", "stable", "stable", "none"),
        (MIDDLE, "3.11.0", "3.12.0", "stable", "stable", "install"),
        # a device ahead of its offer (left the cohort while on a beta) is never downgraded
        (LATE, "3.13.0", "3.13.0", "up_to_date", "stable", "none"),
        (LATE, "3.14.0-beta.1", "3.14.0-beta.1", "up_to_date", "beta", "none"),
        # version ordering, never string ordering
        (LATE, "3.9.0", "3.12.0", "stable", "stable", "install"),
        (LATE, "3.12.0-beta.2", "3.12.0", "stable", "stable", "install"),
        (LATE, "3.12.0+456", "3.12.0+456", "up_to_date", "stable", "none"),
        (LATE, "3.12", "3.12", "stable", "stable", "none"),
        (LATE, "v3.12.0", "v3.12.0", "stable", "stable", "none"),
    ],
)
def test_who_is_offered_what(
    store: StoreContext, current: str, target: str, reason: str, channel: str, action: str
) -> None:
    answer = decide_update(app_releases=WEEK, store=store, current_version=current, now=NOW)
    assert (answer.target_version, answer.reason, answer.channel, answer.action) == (
        target,
        reason,
        channel,
        action,
    )
    assert answer.mandatory is False
    assert answer.in_beta_cohort is store.in_beta


def test_no_release_yet() -> None:
    answer = decide_update(app_releases=app(), store=LATE, current_version="1.0.0", now=NOW)
    assert (answer.target_version, answer.reason, answer.action) == ("1.0.0", "up_to_date", "none")


def test_bad_current_version_raises() -> None:
    with pytest.raises(InvalidVersion):
        decide_update(app_releases=WEEK, store=LATE, current_version="latest", now=NOW)


# --- halt and resume ---------------------------------------------------------------------

HALTED_STAGE = app(
    ReleaseOffer("3.12.0", "released"),
    ReleaseOffer("3.13.0", "halted", halted_from="rolling_out", stage_percent=10),
)
HALTED_BETA = app(
    ReleaseOffer("3.12.0", "released"),
    ReleaseOffer("3.13.0", "rolling_out", stage_percent=10),
    ReleaseOffer("3.14.0-beta.1", "halted", halted_from="beta"),
)


@pytest.mark.parametrize(
    ("releases", "store", "current", "target", "reason", "action"),
    [
        # stores the halted stage reached are held on, or sent back to, the previous release
        (HALTED_STAGE, EARLY, "3.12.0", "3.12.0", "halt", "none"),
        (HALTED_STAGE, EARLY, "3.13.0", "3.12.0", "halt", "rollback"),
        (HALTED_STAGE, BETA, "3.13.0", "3.12.0", "halt", "rollback"),
        (HALTED_STAGE, BETA, "3.12.0", "3.12.0", "halt", "none"),
        # stores it had not reached are unaffected ...
        (HALTED_STAGE, MIDDLE, "3.12.0", "3.12.0", "stable", "none"),
        # ... unless they run the halted version anyway
        (HALTED_STAGE, LATE, "3.13.0", "3.12.0", "halt", "rollback"),
        # a beta halted in the cohort falls back to what the cohort is still offered
        (HALTED_BETA, BETA, "3.14.0-beta.1", "3.13.0", "halt", "rollback"),
        (HALTED_BETA, BETA, "3.12.0", "3.13.0", "halt", "install"),
        (HALTED_BETA, EARLY, "3.12.0", "3.13.0", "stage", "install"),
    ],
)
def test_halt(
    releases: AppReleases, store: StoreContext, current: str, target: str, reason: str, action: str
) -> None:
    answer = decide_update(app_releases=releases, store=store, current_version=current, now=NOW)
    assert (answer.target_version, answer.reason, answer.action) == (target, reason, action)


def test_halted_first_release_has_nothing_to_return_to() -> None:
    releases = app(ReleaseOffer("1.0.0", "halted", halted_from="beta"))
    answer = decide_update(app_releases=releases, store=BETA, current_version="1.0.0", now=NOW)
    assert (answer.target_version, answer.reason, answer.action) == ("1.0.0", "halt", "none")


FLEET = [StoreContext(f"S{i:05d}") for i in range(5000)]


def _reached(releases: AppReleases) -> set[str]:
    return {
        s.external_id
        for s in FLEET
        if decide_update(
            app_releases=releases, store=s, current_version="3.12.0", now=NOW
        ).target_version
        == "3.13.0"
    }


def test_resume_offers_the_same_stores_again_and_stages_only_grow() -> None:
    base = ReleaseOffer("3.12.0", "released")
    at_10 = _reached(app(base, ReleaseOffer("3.13.0", "rolling_out", stage_percent=10)))
    halted = _reached(
        app(base, ReleaseOffer("3.13.0", "halted", halted_from="rolling_out", stage_percent=10))
    )
    resumed = _reached(app(base, ReleaseOffer("3.13.0", "rolling_out", stage_percent=10)))
    at_50 = _reached(app(base, ReleaseOffer("3.13.0", "rolling_out", stage_percent=50)))
    at_100 = _reached(app(base, ReleaseOffer("3.13.0", "rolling_out", stage_percent=100)))
    assert halted == set()
    assert resumed == at_10
    assert at_10 < at_50 < at_100 == {s.external_id for s in FLEET}
    assert abs(len(at_10) / len(FLEET) - 0.10) < 0.015
    assert abs(len(at_50) / len(FLEET) - 0.50) < 0.015


# --- freezes and mandatory updates -------------------------------------------------------

FROZEN = StoreContext(
    "A",
    freezes=(FreezePeriod(NOW - timedelta(days=1), NOW + timedelta(days=2), "grand opening"),),
)


@pytest.mark.parametrize(
    ("store", "current", "min_supported", "target", "reason", "mandatory", "frozen"),
    [
        # the freeze wins over a new stage ...
        (FROZEN, "3.12.0", None, "3.12.0", "freeze", False, True),
        (FROZEN, "3.11.0", "3.11.0", "3.11.0", "freeze", False, True),
        # ... but not over a mandatory update
        (FROZEN, "3.10.0", "3.11.0", "3.13.0", "stage", True, True),
        (EARLY, "3.10.0", "3.11.0", "3.13.0", "stage", True, False),
        (LATE, "3.10.0", "3.12.0", "3.12.0", "stable", True, False),
        (LATE, "3.12.0-beta.2", "3.12.0", "3.12.0", "stable", True, False),
        (LATE, "3.12.0", "3.12.0", "3.12.0", "stable", False, False),
    ],
)
def test_freeze_and_mandatory(
    store: StoreContext,
    current: str,
    min_supported: str | None,
    target: str,
    reason: str,
    mandatory: bool,
    frozen: bool,
) -> None:
    releases = AppReleases("pos", WEEK.releases, AppPolicy(min_supported_version=min_supported))
    answer = decide_update(app_releases=releases, store=store, current_version=current, now=NOW)
    assert (answer.target_version, answer.reason, answer.mandatory) == (target, reason, mandatory)
    assert (answer.frozen_until is not None) is frozen


def test_frozen_store_is_told_to_wait_for_the_first_window_after_the_freeze() -> None:
    answer = decide_update(app_releases=WEEK, store=FROZEN, current_version="3.12.0", now=NOW)
    assert answer.frozen_until == NOW + timedelta(days=2)  # 2025-06-04 03:00Z = 12:00 JST
    assert answer.install_window.starts_at == datetime(2025, 6, 4, 17, 0, tzinfo=UTC)
    assert "grand opening" in answer.message
    assert answer.to_dict()["frozen_until"] == "2025-06-04T03:00:00Z"


@pytest.mark.parametrize(
    ("freezes", "frozen_until"),
    [
        ((), None),
        (((-3, -1),), None),  # over
        (((1, 3),), None),  # not yet
        (((-1, 1),), 1),
        (((-1, 1), (1, 4)), 4),  # back to back
        (((-1, 2), (1, 4), (6, 8)), 4),  # overlapping, then a gap
        (((-2, 5), (-1, 1)), 5),
    ],
)
def test_frozen_until_follows_chained_freezes(
    freezes: tuple[tuple[int, int], ...], frozen_until: int | None
) -> None:
    store = StoreContext(
        "A",
        freezes=tuple(
            FreezePeriod(NOW + timedelta(hours=a), NOW + timedelta(hours=b)) for a, b in freezes
        ),
    )
    expected = None if frozen_until is None else NOW + timedelta(hours=frozen_until)
    assert store.frozen_until(NOW) == expected


def test_freeze_ends_exactly_at_its_end() -> None:
    store = StoreContext("A", freezes=(FreezePeriod(NOW - timedelta(hours=1), NOW),))
    assert store.active_freeze(NOW) is None
    assert store.active_freeze(NOW - timedelta(seconds=1)) is not None


# --- install windows ---------------------------------------------------------------------


TYO = "Asia/Tokyo"
LA = "America/Los_Angeles"


def utc(text: str) -> datetime:
    """``"06-02 03:00"`` → 2025-06-02T03:00Z."""
    if not text.startswith("2025"):
        text = f"2025-{text}"
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("timezone", "start", "end", "now", "opens", "closes"),
    [
        # Tokyo (UTC+9, no DST): 02:00–05:00 JST is 17:00–20:00Z the day before
        (TYO, "02:00", "05:00", "06-02 03:00", "06-02 17:00", "06-02 20:00"),
        (TYO, "02:00", "05:00", "06-02 18:00", "06-02 17:00", "06-02 20:00"),
        (TYO, "02:00", "05:00", "06-02 20:00", "06-03 17:00", "06-03 20:00"),
        # Los Angeles in summer (PDT, UTC-7) and winter (PST, UTC-8)
        (LA, "02:00", "05:00", "06-02 03:00", "06-02 09:00", "06-02 12:00"),
        (LA, "02:00", "05:00", "01-15 03:00", "01-15 10:00", "01-15 13:00"),
        # across midnight: 22:00–02:00 JST is 13:00–17:00Z
        (TYO, "22:00", "02:00", "06-02 14:00", "06-02 13:00", "06-02 17:00"),
        (TYO, "22:00", "02:00", "06-02 16:30", "06-02 13:00", "06-02 17:00"),
        (TYO, "22:00", "02:00", "06-02 17:00", "06-03 13:00", "06-03 17:00"),
        (LA, "22:00", "02:00", "06-02 06:00", "06-02 05:00", "06-02 09:00"),
        # spring forward in LA (2025-03-09, 02:00 PST → 03:00 PDT at 10:00Z):
        # the window opens when the clock jumps and is an hour shorter that night
        (LA, "02:00", "05:00", "03-09 08:00", "03-09 10:00", "03-09 12:00"),
        (LA, "02:30", "04:00", "03-09 08:00", "03-09 10:00", "03-09 11:00"),
        (LA, "22:00", "02:30", "03-09 05:00", "03-09 06:00", "03-09 10:00"),
        # a window wholly inside the skipped hour does not happen that night
        (LA, "02:00", "02:30", "03-09 08:00", "03-10 09:00", "03-10 09:30"),
        # fall back (2025-11-02, 02:00 PDT → 01:00 PST at 09:00Z): 01:30 is its first
        # occurrence, and 01:00–03:00 lasts three hours that night
        (LA, "01:00", "03:00", "11-02 07:00", "11-02 08:00", "11-02 11:00"),
        (LA, "02:00", "05:00", "11-02 07:00", "11-02 10:00", "11-02 13:00"),
        (LA, "01:30", "01:45", "11-02 07:00", "11-02 08:30", "11-02 08:45"),
    ],
)  # fmt: skip
def test_install_window(
    timezone: str, start: str, end: str, now: str, opens: str, closes: str
) -> None:
    window = next_install_window(timezone=timezone, start=start, end=end, after=utc(now))
    assert (window.starts_at, window.ends_at) == (utc(opens), utc(closes))
    assert window.timezone == timezone
    assert window.is_open(utc(now)) is (utc(opens) <= utc(now))


def test_answer_carries_each_stores_window() -> None:
    tokyo = StoreContext("A", timezone="Asia/Tokyo")
    la = StoreContext("A", timezone="America/Los_Angeles")
    a = decide_update(app_releases=WEEK, store=tokyo, current_version="3.12.0", now=NOW)
    b = decide_update(app_releases=WEEK, store=la, current_version="3.12.0", now=NOW)
    assert a.to_dict()["install_window"] == {
        "starts_at": "2025-06-02T17:00:00Z",
        "ends_at": "2025-06-02T20:00:00Z",
        "timezone": "Asia/Tokyo",
        "local_start": "02:00",
        "local_end": "05:00",
    }
    assert b.install_window.starts_at == utc("2025-06-02T09:00")


# --- stages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stages",
    [(), (0, 100), (10, 50), (50, 10, 100), (10, 10, 100), (10, 101), (0.001, 100), (True,)],
)
def test_bad_stages_are_refused(stages: tuple[float, ...]) -> None:
    with pytest.raises(InvalidInput):
        check_stages(stages)


@pytest.mark.parametrize("stages", [(100,), (10, 50, 100), (0.5, 5, 25, 100), (33.33, 100)])
def test_good_stages(stages: tuple[float, ...]) -> None:
    assert check_stages(stages) == stages


@pytest.mark.parametrize(
    ("current", "expected"), [(0, 10), (10, 50), (30, 50), (50, 100), (100, None)]
)
def test_next_stage(current: float, expected: float | None) -> None:
    assert next_stage((10, 50, 100), current) == expected


def test_stage_coverage() -> None:
    stores = [StoreContext(f"S{i:05d}", in_beta=i % 100 == 0) for i in range(20_000)]
    coverage = stage_coverage(stores, (10, 50, 100))
    assert [c.percent for c in coverage] == [10, 50, 100]
    assert coverage[-1].store_count == 20_000
    assert all(c.total == 20_000 for c in coverage)
    assert sum(c.added for c in coverage) == 20_000 - 200  # beta stores had it already
    others = [s for s in stores if not s.in_beta]
    first = sum(store_bucket(s.external_id, salt="rollout") < 1000 for s in others)
    assert coverage[0].store_count == 200 + first
    assert abs(first / len(others) - 0.10) < 0.01


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"version": "3.12.0", "state": "draft"}, "state"),
        ({"version": "3.12.0", "state": "halted"}, "halted_from"),
        ({"version": "3.12.0", "state": "rolling_out", "stage_percent": 120}, "stage_percent"),
    ],
)
def test_release_offer_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as error:
        ReleaseOffer(**kwargs)  # type: ignore[arg-type]
    assert error.value.field == field
