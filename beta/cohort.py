"""Sticky hashed selection of the beta cohort and of rollout stages.

Pure module: no Session, no I/O. Tested with parametrised tables.

**The bucket.** ``store_bucket(id)`` is ``mmh3.hash(f"{salt}:{id}", seed=0, unsigned) % 10000``,
the Unleash recipe with 10 000 buckets instead of 100, so a stage can be set in steps of
0.01 % and a store's place is an integer that reads the same in SQL, logs and tests. It
depends only on the salt and the store's external id, never on the order or number of
stores, so it never changes when stores are added or imported.

**Two salts.** The cohort uses :data:`COHORT_SALT` (``"beta"``) and rollout stages use
:data:`ROLLOUT_SALT` (``"rollout"``). The cohort is filled from the *lowest* beta buckets;
if stages used the same salt, the first 10 % stage would overlap the cohort almost entirely
and reach far fewer than 10 % of the other stores. With an independent salt a stage of p %
reaches p % of the non-beta stores, uniformly, whatever the cohort looks like. Both salts
are constants (not per release), so a store keeps its place in every rollout: halting and
resuming a stage offers the release to exactly the same stores again.

**Order.** Stores are ranked by ``(bucket, external_id)``; the id breaks the (rare) ties so
the ranking is total and deterministic.

**Sticky fills.** A fill keeps the cohort's eligible members: new stores join only to reach a
larger target, and a store leaves the cohort for one of three reasons only — it is no longer
eligible (outside the fill's regions or tags, or excluded by it), the target shrinks (the
highest-ranked members leave first), or a person removes it with a reason (outside fills).
So importing stores never swaps members, and refilling to the same size changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice

import mmh3

from beta.errors import InvalidInput

__all__ = [
    "BUCKETS",
    "COHORT_SALT",
    "REMOVAL_REASONS",
    "ROLLOUT_SALT",
    "FillFilters",
    "FillPlan",
    "FillRequest",
    "StoreCandidate",
    "in_stage",
    "plan_fill",
    "rank_key",
    "store_bucket",
]

BUCKETS = 10_000
# Why a fill removes a member (``FillPlan.removal_reasons``), in words for the preview.
REMOVAL_REASONS = {
    "not_eligible": "no longer eligible (outside this fill's regions or tags)",
    "excluded": "no longer eligible (excluded by this fill)",
    "removed_by_hand": "removed by a person",
    "target_shrinks": "the target shrinks",
}
COHORT_SALT = "beta"
ROLLOUT_SALT = "rollout"


def store_bucket(external_id: str, *, salt: str = COHORT_SALT) -> int:
    """The store's bucket in ``0..9999`` for ``salt``; stable across runs and machines."""
    return mmh3.hash(f"{salt}:{external_id}", 0, signed=False) % BUCKETS


def rank_key(external_id: str, *, salt: str = COHORT_SALT) -> tuple[int, str]:
    """Sort key: lower ranks are chosen first and removed last."""
    return (store_bucket(external_id, salt=salt), external_id)


def in_stage(external_id: str, percent: float, *, salt: str = ROLLOUT_SALT) -> bool:
    """Whether a rollout stage of ``percent`` % reaches this store (0 → none, 100 → all)."""
    return store_bucket(external_id, salt=salt) < round(percent * BUCKETS / 100)


@dataclass(frozen=True)
class StoreCandidate:
    """What the fill needs to know about one store."""

    external_id: str
    region: str = ""
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class FillFilters:
    """Which stores may be chosen by the hash.

    ``regions``: empty means every region. ``tags_any``: the store has at least one of them
    (empty: no condition). ``tags_all``: the store has every one of them. ``exclude_ids``:
    never chosen by the hash (a manual enrolment still wins).
    """

    regions: frozenset[str] = frozenset()
    tags_any: frozenset[str] = frozenset()
    tags_all: frozenset[str] = frozenset()
    exclude_ids: frozenset[str] = frozenset()

    def matches(self, store: StoreCandidate) -> bool:
        """Region and tag conditions only; exclusions are applied separately."""
        if self.regions and store.region not in self.regions:
            return False
        if self.tags_any and not (self.tags_any & store.tags):
            return False
        return self.tags_all <= store.tags

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "regions": sorted(self.regions),
            "tags_any": sorted(self.tags_any),
            "tags_all": sorted(self.tags_all),
            "exclude_ids": sorted(self.exclude_ids),
        }


@dataclass(frozen=True)
class FillRequest:
    """A fill target: exactly one of ``target_count`` or ``target_percent``.

    The target is the size of the whole cohort, manual enrolments included. A percentage is
    of the stores that match the filters' regions and tags (before exclusions and manual
    removals), rounded half up.
    """

    target_count: int | None = None
    target_percent: float | None = None
    filters: FillFilters = field(default_factory=FillFilters)

    def __post_init__(self) -> None:
        if (self.target_count is None) == (self.target_percent is None):
            raise InvalidInput(
                "give exactly one of target_count or target_percent", field="target_count"
            )
        if self.target_count is not None and (
            isinstance(self.target_count, bool) or self.target_count < 0
        ):
            raise InvalidInput("target_count must be 0 or more", field="target_count")
        if self.target_percent is not None and not (
            0 <= self.target_percent <= 100 and math.isfinite(self.target_percent)
        ):
            raise InvalidInput("target_percent must be between 0 and 100", field="target_percent")

    def to_dict(self) -> dict[str, object]:
        return {
            "target_count": self.target_count,
            "target_percent": self.target_percent,
            "filters": self.filters.to_dict(),
        }


@dataclass(frozen=True)
class FillPlan:
    """What a fill would do. Ids in each list are in rank order (lowest bucket first)."""

    request: FillRequest
    target_size: int
    add: tuple[str, ...]
    remove: tuple[str, ...]
    keep: tuple[str, ...]
    cohort: tuple[str, ...]  # the cohort after the fill: manual enrolments + hash choices
    eligible_count: int
    shortfall: int  # how many stores short of the target (not enough eligible stores)
    # Why each store in ``remove`` leaves: a key of :data:`REMOVAL_REASONS`.
    removal_reasons: dict[str, str] = field(default_factory=dict)

    @property
    def changes(self) -> bool:
        return bool(self.add or self.remove)

    def to_dict(self) -> dict[str, object]:
        return {
            "request": self.request.to_dict(),
            "target_size": self.target_size,
            "add": list(self.add),
            "remove": list(self.remove),
            "keep": list(self.keep),
            "cohort_size": len(self.cohort),
            "eligible_count": self.eligible_count,
            "shortfall": self.shortfall,
            "removal_reasons": dict(self.removal_reasons),
        }


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def plan_fill(
    stores: Iterable[StoreCandidate],
    *,
    request: FillRequest,
    pinned_in: Collection[str] = (),
    pinned_out: Collection[str] = (),
    current_members: Collection[str] = (),
) -> FillPlan:
    """The cohort a fill to ``request`` produces, and how it differs from the current one.

    The resulting cohort is every manually enrolled store (``pinned_in``) plus
    ``target - len(pinned_in)`` hash choices. Eligible means matching the filters, not
    excluded, not manually removed (``pinned_out``) and not manually enrolled. The fill is
    sticky: the current members that are still eligible stay (when the target shrinks, the
    highest-ranked of them leave first), and only the rest of the target is taken from the
    lowest-ranked eligible non-members. So a fill to the same or a larger target never
    removes an eligible member, and adding stores never swaps members. Every store in
    ``remove`` has its reason in ``removal_reasons``: the preview shows them before anything
    happens. Manual decisions are never touched.
    """
    pinned_in_set = frozenset(pinned_in)
    pinned_out_set = frozenset(pinned_out) - pinned_in_set
    current = frozenset(current_members)
    filters = request.filters

    matching: list[StoreCandidate] = []
    seen: set[str] = set()
    for store in stores:
        if store.external_id in seen:
            raise InvalidInput(f"store {store.external_id!r} is listed twice", field="stores")
        seen.add(store.external_id)
        if filters.matches(store):
            matching.append(store)

    if request.target_count is not None:
        target = request.target_count
    else:
        assert request.target_percent is not None
        target = _round_half_up(len(matching) * request.target_percent / 100)

    eligible = sorted(
        (
            s.external_id
            for s in matching
            if s.external_id not in filters.exclude_ids
            and s.external_id not in pinned_out_set
            and s.external_id not in pinned_in_set
        ),
        key=rank_key,
    )
    wanted = max(0, target - len(pinned_in_set))
    staying = [e for e in eligible if e in current]  # rank order
    if wanted <= len(staying):
        chosen = staying[:wanted]
    else:
        newcomers = (e for e in eligible if e not in current)
        chosen = staying + list(islice(newcomers, wanted - len(staying)))
    cohort = sorted(pinned_in_set | frozenset(chosen), key=rank_key)
    cohort_set = frozenset(cohort)
    eligible_set = frozenset(eligible)
    matching_ids = frozenset(m.external_id for m in matching)

    def why(member: str) -> str:
        if member in eligible_set:
            return "target_shrinks"
        if member in pinned_out_set:
            return "removed_by_hand"
        if member in matching_ids and member in filters.exclude_ids:
            return "excluded"
        return "not_eligible"

    def ranked(ids: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(ids, key=rank_key))

    return FillPlan(
        request=request,
        target_size=target,
        add=ranked(cohort_set - current),
        remove=ranked(current - cohort_set),
        keep=ranked(current & cohort_set),
        cohort=tuple(cohort),
        eligible_count=len(eligible),
        shortfall=max(0, target - len(cohort)),
        removal_reasons={member: why(member) for member in current - cohort_set},
    )


def candidates_from(
    rows: Iterable[tuple[str, str, Sequence[str]]],
) -> list[StoreCandidate]:
    """Build candidates from ``(external_id, region, tags)`` rows."""
    return [StoreCandidate(ext, region, frozenset(tags)) for ext, region, tags in rows]
