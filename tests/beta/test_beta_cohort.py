from collections import Counter
from collections.abc import Collection

import mmh3
import pytest

from beta.cohort import (
    BUCKETS,
    FillFilters,
    FillPlan,
    FillRequest,
    StoreCandidate,
    in_stage,
    plan_fill,
    rank_key,
    store_bucket,
)
from beta.errors import InvalidInput

# Pinned values: if these change, every store's cohort place and rollout stage reshuffles.
BUCKET_VALUES = [
    # (external id, cohort bucket, rollout bucket)
    ("S001", 3588, 5584),
    ("tokyo-shibuya-01", 302, 1866),
    ("A", 5501, 496),
    ("12345", 2426, 1210),
]

FLEET = [StoreCandidate(f"S{i:05d}") for i in range(20_000)]


@pytest.mark.parametrize(("external_id", "cohort", "rollout"), BUCKET_VALUES)
def test_bucket_values_are_stable(external_id: str, cohort: int, rollout: int) -> None:
    assert store_bucket(external_id) == cohort
    assert store_bucket(external_id, salt="rollout") == rollout
    assert cohort == mmh3.hash(f"beta:{external_id}", 0, signed=False) % BUCKETS


@pytest.mark.parametrize("salt", ["beta", "rollout"])
def test_buckets_are_uniform_over_20000_stores(salt: str) -> None:
    deciles = Counter(store_bucket(s.external_id, salt=salt) * 10 // BUCKETS for s in FLEET)
    assert sorted(deciles) == list(range(10))
    for count in deciles.values():
        # each tenth holds 10 % ± 1 percentage point of the stores
        assert abs(count / len(FLEET) - 0.10) < 0.01


def test_salts_are_independent() -> None:
    cohort = {s.external_id for s in FLEET if store_bucket(s.external_id) < 1000}
    first_stage = {s.external_id for s in FLEET if in_stage(s.external_id, 10)}
    # With one salt they would be the same stores; independent salts overlap about 1 %.
    assert abs(len(cohort & first_stage) / len(FLEET) - 0.01) < 0.005


@pytest.mark.parametrize(
    ("percent", "expected_share"), [(0, 0.0), (10, 0.10), (50, 0.50), (100, 1.0)]
)
def test_stage_reaches_its_percentage(percent: float, expected_share: float) -> None:
    reached = sum(in_stage(s.external_id, percent) for s in FLEET)
    assert abs(reached / len(FLEET) - expected_share) < 0.01


def _plan(
    count: int,
    current: frozenset[str] = frozenset(),
    *,
    pinned_in: Collection[str] = (),
    pinned_out: Collection[str] = (),
) -> FillPlan:
    return plan_fill(
        FLEET[:2000],
        request=FillRequest(target_count=count),
        current_members=current,
        pinned_in=pinned_in,
        pinned_out=pinned_out,
    )


@pytest.mark.parametrize(("low", "high"), [(0, 10), (10, 50), (50, 51), (100, 400), (5, 2000)])
def test_raising_the_target_only_adds(low: int, high: int) -> None:
    before = _plan(low)
    after = _plan(high, frozenset(before.cohort))
    assert after.remove == ()
    assert set(before.cohort) <= set(after.cohort)
    assert len(after.cohort) == high


@pytest.mark.parametrize(("high", "low"), [(10, 0), (50, 10), (51, 50), (400, 100)])
def test_lowering_the_target_only_removes_the_highest_ranked(high: int, low: int) -> None:
    before = _plan(high)
    after = _plan(low, frozenset(before.cohort))
    assert after.add == ()
    assert len(after.cohort) == low
    ranked = sorted(before.cohort, key=rank_key)
    assert list(after.remove) == ranked[low:]
    assert max(map(rank_key, after.cohort), default=(-1, "")) < min(map(rank_key, after.remove))


def test_same_input_same_plan_whatever_the_order() -> None:
    shuffled = list(reversed(FLEET[:2000]))
    a = plan_fill(FLEET[:2000], request=FillRequest(target_count=77))
    b = plan_fill(shuffled, request=FillRequest(target_count=77))
    assert a == b


def test_manual_decisions_win_over_the_hash() -> None:
    base = _plan(20)
    lowest = base.cohort[0]
    outsider = sorted((s.external_id for s in FLEET[:2000]), key=rank_key)[-1]
    plan = _plan(
        20,
        frozenset(base.cohort) | {outsider},
        pinned_in={outsider},
        pinned_out={lowest},
    )
    assert outsider in plan.cohort  # manually enrolled: kept although its hash is the highest
    assert lowest not in plan.cohort  # manually removed: never chosen, lowest hash or not
    assert lowest in plan.remove
    assert len(plan.cohort) == 20  # the pin counts towards the target
    # lowering the target below the pins removes every hash choice but no pin
    assert _plan(0, frozenset(plan.cohort), pinned_in={outsider}).cohort == (outsider,)


def test_filters_and_exclusions() -> None:
    stores = [
        StoreCandidate("K1", "kanto", frozenset({"fc:sakura", "hw:gen3"})),
        StoreCandidate("K2", "kanto", frozenset({"hw:gen2"})),
        StoreCandidate("K3", "kanto", frozenset({"fc:sakura", "hw:gen2"})),
        StoreCandidate("O1", "osaka", frozenset({"fc:sakura", "hw:gen3"})),
    ]
    filters = FillFilters(
        regions=frozenset({"kanto"}),
        tags_any=frozenset({"fc:sakura"}),
        tags_all=frozenset({"hw:gen3"}),
    )
    plan = plan_fill(stores, request=FillRequest(target_count=10, filters=filters))
    assert plan.cohort == ("K1",)
    assert plan.eligible_count == 1
    assert plan.shortfall == 9

    excluded = FillFilters(regions=frozenset({"kanto"}), exclude_ids=frozenset({"K2"}))
    plan = plan_fill(stores, request=FillRequest(target_count=10, filters=excluded))
    assert set(plan.cohort) == {"K1", "K3"}


def test_members_outside_new_filters_are_in_the_preview_as_removals() -> None:
    stores = [StoreCandidate("K1", "kanto"), StoreCandidate("O1", "osaka")]
    plan = plan_fill(
        stores,
        request=FillRequest(target_count=1, filters=FillFilters(regions=frozenset({"osaka"}))),
        current_members={"K1"},
    )
    assert (plan.add, plan.remove, plan.keep) == (("O1",), ("K1",), ())
    assert plan.removal_reasons == {"K1": "not_eligible"}


def _imported_fleet() -> tuple[list[StoreCandidate], list[StoreCandidate]]:
    """A fleet of 60 stores, and 40 more imported later, some of them ranked before every
    store of the first fleet's cohort (so a fill that only took the lowest ranks would swap)."""
    first = FLEET[:60]
    later = FLEET[60:2000]
    cohort_of_first = plan_fill(first, request=FillRequest(target_count=8)).cohort
    worst = max(map(rank_key, cohort_of_first))
    lower = [s for s in later if rank_key(s.external_id) < worst][:20]
    higher = [s for s in later if rank_key(s.external_id) > worst][:20]
    return first, lower + higher


@pytest.mark.parametrize(("target", "added", "removed"), [(8, 0, 0), (12, 4, 0), (60, 52, 0)])
def test_a_fill_after_an_import_keeps_every_eligible_member(
    target: int, added: int, removed: int
) -> None:
    first, imported = _imported_fleet()
    members = frozenset(plan_fill(first, request=FillRequest(target_count=8)).cohort)
    plan = plan_fill(
        first + imported, request=FillRequest(target_count=target), current_members=members
    )
    assert (len(plan.add), len(plan.remove)) == (added, removed)
    assert members <= set(plan.cohort)
    # The newcomers are the lowest-ranked non-members, imported stores included.
    outsiders = sorted(
        (s.external_id for s in first + imported if s.external_id not in members), key=rank_key
    )
    assert list(plan.add) == outsiders[:added]


def test_shrinking_removes_the_highest_ranked_members_and_says_why() -> None:
    first, imported = _imported_fleet()
    members = frozenset(plan_fill(first, request=FillRequest(target_count=8)).cohort)
    plan = plan_fill(first + imported, request=FillRequest(target_count=5), current_members=members)
    assert plan.add == ()
    assert list(plan.remove) == sorted(members, key=rank_key)[5:]
    assert set(plan.removal_reasons.values()) == {"target_shrinks"}


def test_every_removal_has_its_reason() -> None:
    stores = [
        StoreCandidate("K1", "kanto"),
        StoreCandidate("K2", "kanto"),
        StoreCandidate("K3", "kanto"),
        StoreCandidate("O1", "osaka"),
    ]
    filters = FillFilters(regions=frozenset({"kanto"}), exclude_ids=frozenset({"K2"}))
    plan = plan_fill(
        stores,
        request=FillRequest(target_count=0, filters=filters),
        current_members={"K1", "K2", "K3", "O1"},
        pinned_out={"K3"},
    )
    assert plan.removal_reasons == {
        "K1": "target_shrinks",
        "K2": "excluded",
        "K3": "removed_by_hand",
        "O1": "not_eligible",
    }
    assert set(plan.removal_reasons) == set(plan.remove)


@pytest.mark.parametrize(
    ("stores", "percent", "target"),
    [(200, 5, 10), (200, 0, 0), (200, 100, 200), (30, 5, 2), (10, 25, 3), (0, 50, 0)],
)
def test_percentage_targets_round_half_up(stores: int, percent: float, target: int) -> None:
    plan = plan_fill(FLEET[:stores], request=FillRequest(target_percent=percent))
    assert plan.target_size == target
    assert len(plan.cohort) == target


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"target_count": 1, "target_percent": 1},
        {"target_count": -1},
        {"target_percent": 101},
        {"target_percent": float("nan")},
    ],
)
def test_fill_request_rejects_bad_targets(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidInput):
        FillRequest(**kwargs)


def test_duplicate_store_ids_are_refused() -> None:
    with pytest.raises(InvalidInput):
        plan_fill([StoreCandidate("A"), StoreCandidate("A")], request=FillRequest(target_count=1))
