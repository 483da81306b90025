"""Which version a device should run: the update answer, install windows, stage coverage.

Pure module: no Session, no I/O. The service describes what it knows about an app's
releases (:class:`AppReleases`) and a store (:class:`StoreContext`) as plain dataclasses;
:func:`decide_update` turns them into an :class:`UpdateAnswer`.

Rules, in order:

1. **Baseline.** The highest ``released`` version is offered to every store (reason
   ``stable``).
2. **Beta.** A release in ``beta`` is offered to stores in the beta cohort (reason
   ``cohort``).
3. **Staged rollout.** A ``rolling_out`` release is offered to beta stores (``cohort``) and
   to every other store whose rollout bucket is below the current stage
   (:func:`beta.cohort.in_stage`, reason ``stage``). Buckets use their own salt, so a store
   keeps its place through every stage, halt and resume.
4. The target is the highest version offered. A device already *ahead* of it (for example a
   store taken out of the cohort while on a beta) is never downgraded: it stays, reason
   ``up_to_date``.
5. **Halt.** A ``halted`` release is offered to nobody. A store that would have been
   offered it (its audience when it was halted: the cohort, plus the stage reached) gets
   the best release still offered, with reason ``halt``; a device running the halted version
   is sent back to that release (``action: rollback``).
6. **Freeze.** A frozen store is told to stay on its current version (reason ``freeze``),
   with the install window moved to the first window after the freeze. The freeze wins
   over everything except a **mandatory** update: when the current version is below the
   app's minimum supported version the device gets the answer it would get unfrozen (and
   ``frozen_until`` says a freeze was overridden). A halt rollback does not pierce a freeze:
   a freeze is a promise that nothing changes in the store.
7. **Mandatory** is true whenever the current version is below the minimum supported one.

**Channel** is ``beta`` when the target is a release still in beta (not yet promoted),
``stable`` otherwise; ``in_beta_cohort`` says whether the store itself is in the cohort.

**Install window.** Each store has a window in its local time (default 02:00–05:00); an end
earlier than the start crosses midnight. The answer carries the current window, or the next
one, as UTC instants. On DST days the window follows the wall clock: a start that falls in
the spring-forward gap begins at the moment the clock jumps, and an ambiguous fall-back time
means its first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

import utc
from beta.cohort import BUCKETS, ROLLOUT_SALT, store_bucket
from beta.errors import InvalidInput
from beta.validation import parse_window_time
from versioning import Version, parse_version

__all__ = [
    "DEFAULT_STAGES",
    "AppPolicy",
    "AppReleases",
    "FreezePeriod",
    "InstallWindow",
    "ReleaseOffer",
    "StageCoverage",
    "StoreContext",
    "UpdateAnswer",
    "check_stages",
    "decide_update",
    "next_install_window",
    "next_stage",
    "stage_coverage",
]

ReleaseState = Literal["beta", "rolling_out", "released", "halted"]
HaltedFrom = Literal["beta", "rolling_out"]
Channel = Literal["beta", "stable"]
Reason = Literal["cohort", "stage", "stable", "freeze", "halt", "up_to_date"]
Action = Literal["install", "none", "rollback"]

DEFAULT_STAGES: tuple[float, ...] = (10, 50, 100)


def check_stages(stages: Iterable[float]) -> tuple[float, ...]:
    """Rollout stages as percentages: strictly increasing, above 0, ending at 100."""
    result = tuple(stages)
    if not result:
        raise InvalidInput("give at least one stage", field="stages")
    for percent in result:
        if isinstance(percent, bool) or not 0 < percent <= 100:
            raise InvalidInput(f"stage {percent!r} is not a percentage in (0, 100]", field="stages")
        if abs(round(percent * BUCKETS / 100) - percent * BUCKETS / 100) > 1e-6:
            raise InvalidInput(f"stage {percent!r} is finer than 0.01 %", field="stages")
    if any(b <= a for a, b in pairwise(result)):
        raise InvalidInput("stages must be strictly increasing", field="stages")
    if result[-1] != 100:
        raise InvalidInput("the last stage must be 100 %", field="stages")
    return result


def next_stage(stages: Sequence[float], current_percent: float) -> float | None:
    """The stage after ``current_percent`` (None when the rollout is complete)."""
    for percent in stages:
        if percent > current_percent:
            return percent
    return None


def _stage_threshold(percent: float) -> int:
    return round(percent * BUCKETS / 100)


@dataclass(frozen=True)
class ReleaseOffer:
    """One release of an app as far as devices are concerned.

    ``stage_percent`` is the current stage of a ``rolling_out`` release, or the stage it had
    reached when it was halted. Releases in other states (draft, approved, rejected,
    cancelled) are simply not passed in.
    """

    version: str
    state: ReleaseState
    halted_from: HaltedFrom | None = None
    stage_percent: float = 0
    parsed: Version = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.state not in get_args(ReleaseState):
            raise InvalidInput(f"release state {self.state!r} is not offered", field="state")
        if self.state == "halted" and self.halted_from not in get_args(HaltedFrom):
            raise InvalidInput(
                "a halted release must say whether it was halted in beta or rolling_out",
                field="halted_from",
            )
        if not 0 <= self.stage_percent <= 100:
            raise InvalidInput("stage_percent must be between 0 and 100", field="stage_percent")
        object.__setattr__(self, "parsed", parse_version(self.version))

    @property
    def audience_state(self) -> ReleaseState:
        """The state whose audience this release has (or had, when halted)."""
        if self.state == "halted":
            assert self.halted_from is not None
            return self.halted_from
        return self.state


@dataclass(frozen=True)
class AppPolicy:
    min_supported_version: str | None = None
    stages: tuple[float, ...] = DEFAULT_STAGES
    rollout_salt: str = ROLLOUT_SALT
    min_supported: Version | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", check_stages(self.stages))
        minimum = self.min_supported_version
        object.__setattr__(self, "min_supported", parse_version(minimum) if minimum else None)


@dataclass(frozen=True)
class AppReleases:
    """Everything the answer needs about one app (slug), as the service passes it in."""

    app: str
    releases: tuple[ReleaseOffer, ...] = ()
    policy: AppPolicy = field(default_factory=AppPolicy)


@dataclass(frozen=True)
class FreezePeriod:
    starts_at: datetime  # aware UTC (naive is taken as UTC)
    ends_at: datetime
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "starts_at", utc.aware(self.starts_at))
        object.__setattr__(self, "ends_at", utc.aware(self.ends_at))


@dataclass(frozen=True)
class StoreContext:
    """What the answer needs about one store. ``freezes`` are the unlifted ones."""

    external_id: str
    in_beta: bool = False
    timezone: str = "Asia/Tokyo"
    window_start: str = "02:00"
    window_end: str = "05:00"
    freezes: tuple[FreezePeriod, ...] = ()

    def active_freeze(self, now: datetime) -> FreezePeriod | None:
        """The freeze in force at ``now``, the one ending last when several overlap."""
        moment = utc.aware(now)
        active = [f for f in self.freezes if f.starts_at <= moment < f.ends_at]
        return max(active, key=lambda f: f.ends_at) if active else None

    def frozen_until(self, now: datetime) -> datetime | None:
        """When the store stops being frozen, following freezes that overlap or touch."""
        current = self.active_freeze(now)
        if current is None:
            return None
        until = current.ends_at
        extended = True
        while extended:
            extended = False
            for freeze in self.freezes:
                if freeze.starts_at <= until < freeze.ends_at:
                    until = freeze.ends_at
                    extended = True
        return until


# --- install windows ---------------------------------------------------------------------


@dataclass(frozen=True)
class InstallWindow:
    starts_at: datetime  # aware UTC
    ends_at: datetime
    timezone: str
    local_start: str  # "HH:MM" as configured
    local_end: str

    def is_open(self, now: datetime) -> bool:
        return self.starts_at <= utc.aware(now) < self.ends_at

    def to_dict(self) -> dict[str, str]:
        return {
            "starts_at": _iso(self.starts_at),
            "ends_at": _iso(self.ends_at),
            "timezone": self.timezone,
            "local_start": self.local_start,
            "local_end": self.local_end,
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _local_to_utc(day: date, clock: time, zone: ZoneInfo) -> datetime:
    naive = datetime.combine(day, clock)
    first = naive.replace(tzinfo=zone).astimezone(UTC)  # fold=0: first occurrence
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first
    # The wall clock skips this time (spring forward). It is reached when the clock jumps:
    # find that instant between the two readings of the time.
    other = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = min(first, other), max(first, other)
    after_offset = high.astimezone(zone).utcoffset()
    lo, hi = 0, int((high - low).total_seconds())
    while lo < hi:
        mid = (lo + hi) // 2
        if (low + timedelta(seconds=mid)).astimezone(zone).utcoffset() == after_offset:
            hi = mid
        else:
            lo = mid + 1
    return low + timedelta(seconds=lo)


def next_install_window(*, timezone: str, start: str, end: str, after: datetime) -> InstallWindow:
    """The window open at ``after``, or else the next one, as UTC instants."""
    zone = ZoneInfo(timezone)
    moment = utc.aware(after)
    local_day = moment.astimezone(zone).date()
    opens, closes = parse_window_time(start), parse_window_time(end)
    for offset in range(-1, 4):
        day = local_day + timedelta(days=offset)
        starts_at = _local_to_utc(day, opens, zone)
        ends_at = _local_to_utc(day if closes > opens else day + timedelta(days=1), closes, zone)
        # A window lying wholly in a DST gap has no duration that day; take the next.
        if ends_at > moment and ends_at > starts_at:
            return InstallWindow(starts_at, ends_at, timezone, start, end)
    raise AssertionError("a daily window always recurs within four days")


# --- the answer --------------------------------------------------------------------------


@dataclass(frozen=True)
class UpdateAnswer:
    app: str
    store: str
    current_version: str
    target_version: str
    channel: Channel
    reason: Reason
    action: Action  # install (target newer), rollback (target older), none
    mandatory: bool
    install_window: InstallWindow
    in_beta_cohort: bool
    frozen_until: datetime | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "store_id": self.store,
            "current_version": self.current_version,
            "target_version": self.target_version,
            "channel": self.channel,
            "reason": self.reason,
            "action": self.action,
            "mandatory": self.mandatory,
            "install_window": self.install_window.to_dict(),
            "in_beta_cohort": self.in_beta_cohort,
            "frozen_until": _iso(self.frozen_until) if self.frozen_until else None,
            "message": self.message,
        }


@dataclass(frozen=True)
class _Candidate:
    version: Version
    reason: Reason
    offer: ReleaseOffer


def _audience_reason(
    state: ReleaseState, offer: ReleaseOffer, store: StoreContext, salt: str
) -> Reason | None:
    if state == "released":
        return "stable"
    if store.in_beta:
        return "cohort"
    if state == "rolling_out" and (
        store_bucket(store.external_id, salt=salt) < _stage_threshold(offer.stage_percent)
    ):
        return "stage"
    return None


def decide_update(
    *,
    app_releases: AppReleases,
    store: StoreContext,
    current_version: str,
    now: datetime,
) -> UpdateAnswer:
    """The version ``store``'s device running ``current_version`` should run, and when.

    Raises :class:`versioning.InvalidVersion` when ``current_version`` is not a version.
    """
    current = parse_version(current_version)
    policy = app_releases.policy
    salt = policy.rollout_salt

    offered: list[_Candidate] = []
    halted_hits: list[ReleaseOffer] = []
    halted_versions: set[Version] = set()
    for offer in app_releases.releases:
        reason = _audience_reason(offer.audience_state, offer, store, salt)
        if offer.state == "halted":
            halted_versions.add(offer.parsed)
            if reason is not None or offer.parsed == current:
                halted_hits.append(offer)
        elif reason is not None:
            offered.append(_Candidate(offer.parsed, reason, offer))
    best = max(offered, key=lambda c: c.version) if offered else None

    target = current
    target_reason: Reason
    if current in halted_versions:
        if best is None:
            target_reason = "halt"
            message = f"{current} is halted and there is no earlier release to return to"
        else:
            target, target_reason = best.version, "halt"
            message = f"{current} is halted; return to {best.version}"
    elif best is None:
        target_reason = "up_to_date"
        message = "no release is offered to this store yet"
    elif best.version >= current:
        target, target_reason = best.version, best.reason
        newer_halted = [h for h in halted_hits if h.parsed > best.version]
        if newer_halted:
            target_reason = "halt"
            message = f"{max(h.parsed for h in newer_halted)} is halted; stay on {target}"
        else:
            message = _offer_message(best)
    else:
        target_reason = "up_to_date"
        message = f"{current} is newer than what this store is offered ({best.version}); keep it"

    mandatory = policy.min_supported is not None and current < policy.min_supported
    frozen_until = store.frozen_until(now)
    window_from = utc.aware(now)
    if frozen_until is not None:
        if mandatory:
            message = f"{message}; mandatory update overrides the store's freeze"
        else:
            freeze = store.active_freeze(now)
            why = f" ({freeze.reason})" if freeze and freeze.reason else ""
            message = f"store is frozen until {_iso(frozen_until)}{why}; stay on {current}"
            target, target_reason = current, "freeze"
            window_from = frozen_until
    if mandatory:
        message = f"{message}; {current} is below the minimum supported version"

    channel: Channel = "stable"
    for offer in app_releases.releases:
        if offer.state == "beta" and offer.parsed == target:
            channel = "beta"
    target_text = current_version.strip() if target == current else _original(target, offered)
    action: Action = "none"
    if target > current:
        action = "install"
    elif target < current:
        action = "rollback"
    return UpdateAnswer(
        app=app_releases.app,
        store=store.external_id,
        current_version=current_version.strip(),
        target_version=target_text,
        channel=channel,
        reason=target_reason,
        action=action,
        mandatory=mandatory,
        install_window=next_install_window(
            timezone=store.timezone,
            start=store.window_start,
            end=store.window_end,
            after=window_from,
        ),
        in_beta_cohort=store.in_beta,
        frozen_until=frozen_until,
        message=message,
    )


def _original(version: Version, offered: Sequence[_Candidate]) -> str:
    for candidate in offered:
        if candidate.version == version:
            return candidate.offer.version
    return str(version)


def _offer_message(candidate: _Candidate) -> str:
    offer = candidate.offer
    if candidate.reason == "cohort":
        return f"{offer.version} is offered to beta stores"
    if candidate.reason == "stage":
        return f"{offer.version} is rolling out ({offer.stage_percent:g} % stage)"
    return f"{offer.version} is the released version"


# --- stage coverage ----------------------------------------------------------------------


@dataclass(frozen=True)
class StageCoverage:
    percent: float
    store_count: int  # stores offered the release at this stage, beta stores included
    added: int  # stores this stage adds over the previous one
    total: int  # stores in the fleet


def stage_coverage(
    stores: Iterable[StoreContext], stages: Sequence[float], *, salt: str = ROLLOUT_SALT
) -> list[StageCoverage]:
    """How many stores each stage of a rollout reaches, for the release page."""
    in_beta = 0
    buckets: list[int] = []
    for store in stores:
        if store.in_beta:
            in_beta += 1
        else:
            buckets.append(store_bucket(store.external_id, salt=salt))
    total = in_beta + len(buckets)
    result: list[StageCoverage] = []
    previous = in_beta
    for percent in stages:
        threshold = _stage_threshold(percent)
        count = in_beta + sum(1 for b in buckets if b < threshold)
        result.append(StageCoverage(percent, count, count - previous, total))
        previous = count
    return result
